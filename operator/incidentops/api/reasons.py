"""Every condition and Event reason, as CamelCase constants, in one module (Argo Rollouts style).

Where it sits: ``incidentops.api`` (pure). The domain picks reasons from here;
the handlers put them on conditions and on Kubernetes Events; the timeline uses
them as its ``kind``. A reason is specific (``RollbackStarted``, not ``Started``)
and stable: alerts and dashboards match on it, so renaming one is an API change.
"""

from __future__ import annotations

# --- shared -------------------------------------------------------------------------------------
INITIALIZING = "Initializing"  # first visit: the condition is set, nothing is known yet
SPEC_INVALID = "SpecInvalid"  # the object fails validation the schema could not express

# --- Incident Ready: policy selection and classification -----------------------------------------
NO_ESCALATION_POLICY = "NoEscalationPolicy"  # no policy selects the incident and there is no `default`
POLICY_NOT_FOUND = "PolicyNotFound"  # spec.escalationPolicyRef names a policy that does not exist
POLICY_REF_OUT_OF_SCOPE = "PolicyRefOutOfScope"  # the ref's namespace is neither the incident's nor the operator's
POLICY_NOT_READY = "PolicyNotReady"  # the policy in effect is not Ready (a channel cannot be used)
POLICY_SELECTED = "PolicySelected"  # a policy is in effect (Ready=True; the message names it)
POLICY_CHANGED = "PolicyChanged"  # Event: a different policy now applies to the incident
CLASSIFIED = "Classified"  # Event: severity/type set by a classification rule
DEFAULT_SEVERITY = "DefaultSeverity"  # Event: no rule matched, the policy's defaultSeverity applies
SEVERITY_CHANGED = "SeverityChanged"  # Event: the effective severity changed (deadlines recomputed)

# --- Incident Ready: the API server refuses what looking at the incident needs (permanent errors) -
API_FORBIDDEN = "APIForbidden"  # 403: the operator's RBAC does not allow a request (the message names it)
API_REJECTED = "APIRejected"  # another 4xx (400, 404, 422 ...): the server refused a request as such

# --- EscalationPolicy Ready: channels and their Secrets ------------------------------------------
CHANNELS_READY = "ChannelsReady"  # every channel's Secret exists, is labelled and has its key
SECRET_NOT_FOUND = "SecretNotFound"  # a secretKeyRef names a Secret that does not exist
SECRET_NOT_LABELLED = "SecretNotLabelled"  # the Secret lacks incidentops.dev/channel-secret: "true"
SECRET_KEY_MISSING = "SecretKeyMissing"  # the Secret exists but has no such key
NOTIFICATIONS_FAILING = "NotificationsFailing"  # a channel keeps failing (the message names it and its error)

# --- Acknowledged ----------------------------------------------------------------------------------
AWAITING_ACKNOWLEDGEMENT = "AwaitingAcknowledgement"  # nobody has acknowledged in this episode
ACKNOWLEDGED_BY = "AcknowledgedBy"  # acknowledged in this episode (the message names who)
ACKNOWLEDGEMENT_OUTDATED = "AcknowledgementOutdated"  # spec.acknowledgement.at predates this episode
ACKNOWLEDGED_BY_CONTAINMENT = "AcknowledgedByContainment"  # contained, which counts as acknowledgement

# --- Contained ------------------------------------------------------------------------------------
NOT_CONTAINED = "NotContained"  # nobody has declared containment in this episode
CONTAINED_BY = "ContainedBy"  # contained in this episode (the message names who)

# --- Resolved -------------------------------------------------------------------------------------
UNRESOLVED = "Unresolved"  # the incident is open
RESOLVED_BY = "ResolvedBy"  # a person resolved it in this episode (spec.resolution)
ALERTS_RESOLVED = "AlertsResolved"  # every alert resolved and the policy auto-resolves (status only)

# --- AlertsResolved -------------------------------------------------------------------------------
ALERTS_FIRING = "AlertsFiring"  # at least one alert of the group fires
NO_ALERTS = "NoAlerts"  # the incident has no alert group (manual)
ALERTS_RECEIVED = "AlertsReceived"  # Event: a new snapshot of the alert group arrived

# --- SLABreached ----------------------------------------------------------------------------------
NOT_BREACHED = "NotBreached"  # every deadline of this episode is met so far
SLA_BREACHED = "SLABreached"  # a deadline was missed (generic; Event reason too)
ACKNOWLEDGE_DEADLINE_MISSED = "AcknowledgeDeadlineMissed"  # not acknowledged within acknowledgeWithin
RESOLVE_DEADLINE_MISSED = "ResolveDeadlineMissed"  # not resolved within resolveWithin
UPDATE_DEADLINE_MISSED = "UpdateDeadlineMissed"  # no status update within updateEvery
NOTIFY_USERS_DEADLINE_MISSED = "NotifyUsersDeadlineMissed"  # affected users not notified within 72h
NOTIFY_REGULATOR_DEADLINE_MISSED = "NotifyRegulatorDeadlineMissed"  # regulator not notified within 72h

# --- EscalationExhausted --------------------------------------------------------------------------
ESCALATION_IN_PROGRESS = "EscalationInProgress"  # levels or rounds are still due
ESCALATION_STOPPED = "EscalationStopped"  # acknowledged or resolved: paging stopped
ESCALATION_EXHAUSTED = "EscalationExhausted"  # every level and round notified, nobody acknowledged
NO_LEVELS = "NoLevels"  # the policy has no level for the incident's severity

# --- lifecycle Events and timeline ----------------------------------------------------------------
TRIGGERED = "Triggered"  # Event: the incident started (episode 1)
ACKNOWLEDGED = "Acknowledged"  # Event: acknowledged
CONTAINED = "Contained"  # Event: contained
RESOLVED = "Resolved"  # Event: resolved
CLOSED = "Closed"  # Event: the reopen window passed and any required post-mortem is done
REOPENED = "Reopened"  # Event: the alerts fired again within the reopen window: a new episode
STATUS_UPDATE_POSTED = "StatusUpdatePosted"  # Event: spec.statusUpdate changed and was announced
ROLE_UNCLAIMED = "RoleUnclaimed"  # Event: a P1/P2 incident has no commander (or other role) yet
IMPACT_ESCALATED = "ImpactEscalated"  # Event: estimated cost passed an impactEscalation threshold
DRILL = "Drill"  # Event: the incident is a drill; actions are dry runs
TIME_CLAMPED = "TimeClamped"  # timeline: a time from outside was ahead of the clock and counts as received

# --- escalation and notification Events -----------------------------------------------------------
ESCALATED = "Escalated"  # Event: a level was reached and its channels notified
ESCALATION_ROUND_STARTED = "EscalationRoundStarted"  # Event: repeat started a new round
NOTIFICATION_SENT = "NotificationSent"  # Event: a channel accepted a notification
NOTIFICATION_FAILED = "NotificationFailed"  # Event: a notification failed (once; the message says if it is retried)
NOTIFICATION_SKIPPED = "NotificationSkipped"  # timeline: a notification became moot (acknowledged, resolved ...)

# --- post-mortem ----------------------------------------------------------------------------------
POSTMORTEM_REQUIRED = "PostmortemRequired"  # Event: resolved; a post-mortem is due by status.postmortem.dueBy
POSTMORTEM_OVERDUE = "PostmortemOverdue"  # Event: the post-mortem is past due
POSTMORTEM_DONE = "PostmortemDone"  # Event: the post-mortem is done
POSTMORTEM_DRAFTED = "PostmortemDrafted"  # Event: the draft is written to its ConfigMap (status.postmortem.ref)
POSTMORTEM_TEMPLATE_FAILED = "PostmortemTemplateFailed"  # Event: the policy's template failed; the shipped one was used
DRILL_ASSESSED = "DrillAssessed"  # Event: a resolved drill's assessment is written (status.assessment)

# --- actions (Events, timeline kinds and status.actions[].reason) ---------------------------------
ACTION_PLANNED = "ActionPlanned"  # an action was planned (a dry run or a drill records only the plan)
ACTION_AWAITING_APPROVAL = "ActionAwaitingApproval"  # an action waits for an approval
ACTION_APPROVED = "ActionApproved"  # an approval arrived: the action goes ahead
ACTION_STARTED = "ActionStarted"  # recorded Running with its key and plan, before any change
ACTION_SUCCEEDED = "ActionSucceeded"  # an action finished and was verified (generic)
ACTION_FAILED = "ActionFailed"  # an action failed (generic; the message says why)
ACTION_SKIPPED = "ActionSkipped"  # an action was skipped (the reason says which guard or check)
ACTION_RATE_LIMITED = "ActionRateLimited"  # skipped: the policy's guards.maxActionsPerHour is reached
ACTION_UNDONE = "ActionUndone"  # an action was undone (generic)
ROLLBACK_STARTED = "RollbackStarted"  # a Deployment's template is being set back
ROLLBACK_SUCCEEDED = "RollbackSucceeded"  # the Deployment runs the earlier revision, available
ROLLBACK_FAILED = "RollbackFailed"  # the rollback did not become available (the Deployment's own message)
MAINTENANCE_ENTERED = "MaintenanceEntered"  # a Service/Ingress sends its traffic to the maintenance backend
MAINTENANCE_EXITED = "MaintenanceExited"  # the original selector/backends are back
MAINTENANCE_FAILED = "MaintenanceFailed"  # the maintenance backend did not take the traffic (switched back)
QUARANTINED = "Quarantined"  # Pods relabelled out of rotation and isolated by a NetworkPolicy
QUARANTINE_FAILED = "QuarantineFailed"  # quarantined Pods are still in a Service, or a Pod could not be isolated
QUARANTINE_RELEASED = "QuarantineReleased"  # quarantined Pods deleted and their NetworkPolicy removed
SCALED = "Scaled"  # a Deployment was scaled and its replicas are ready
SCALE_RESTORED = "ScaleRestored"  # the original replica count is back
EVIDENCE_COLLECTED = "EvidenceCollected"  # evidence stored and recorded in status.evidence
EVIDENCE_INCOMPLETE = "EvidenceIncomplete"  # a snapshot's manifest or chunks missing or altered after storing
UNDO_SKIPPED = "UndoSkipped"  # an undo found the object changed by someone else since: left as it is

# --- why an action is where it is (status.actions[].reason) ---------------------------------------
DRY_RUN = "DryRun"  # the policy's guards.dryRun (or a drill) allows planning only
APPROVAL_REQUIRED = "ApprovalRequired"  # the action needs approval and has none yet
RATE_LIMITED = "RateLimited"  # guards.maxActionsPerHour reached
PROTECTED_NAMESPACE = "ProtectedNamespace"  # the target is in a protected namespace
GITOPS_MANAGED = "GitOpsManaged"  # Argo CD or Flux manage the target and allowGitOpsManaged is false
DEPLOYMENT_PAUSED = "DeploymentPaused"  # rollback refused: the Deployment is paused
REVISION_NOT_FOUND = "RevisionNotFound"  # rollback refused: the revision is gone
ALREADY_AT_REVISION = "AlreadyAtRevision"  # rollback skipped: the template already matches the target revision
NOT_CHANGED_RECENTLY = "NotChangedRecently"  # rollback skipped: no change within ifChangedWithin
CHANGED_AFTER_START = "ChangedAfterStart"  # rollback skipped: the current revision came after the incident started
ALREADY_ROLLED_BACK = "AlreadyRolledBack"  # rollback skipped: an incidentops rollback put the current template in
UNSUPPORTED_TARGET = "UnsupportedTarget"  # the target is of a shape the action cannot change safely
TOO_MANY_TARGETS = "TooManyTargets"  # refused: more objects than one action (or its record) takes, or an empty selector
UNDO_DATA_TOO_LARGE = "UndoDataTooLarge"  # refused: what undo needs does not fit the ledger record
TARGET_CHANGED = "TargetChanged"  # verify: someone changed the object since the action (it is theirs now)
BACKEND_NOT_READY = "BackendNotReady"  # maintenance refused: no ready Pod matches the maintenance selector
NOTHING_TO_DO = "NothingToDo"  # the object is already as the action would make it
ALREADY_DONE = "AlreadyDone"  # after a restart the cluster shows the action done: not repeated
TARGET_NOT_FOUND = "TargetNotFound"  # the action's target does not exist
NO_TARGET = "NoTarget"  # neither the action nor the incident's targets name an object to act on
CONFLICT = "Conflict"  # the object kept changing under the action (re-planned, then given up)
VERIFY_TIMED_OUT = "VerifyTimedOut"  # the change was made but did not take effect in time
SUPERSEDED = "Superseded"  # the request disappeared from spec and policy before it ran
