"""The Incident kind: its spec (owned by people and the Alertmanager receiver) and its status (owned by the operator).

Where it sits: ``incidentops.api`` (pure models). The domain reads these models
and returns decisions; the handlers write ``status`` through the status
subresource. ``crdgen`` turns :class:`IncidentSpec` and :class:`IncidentStatus`
into ``crds/incidents.incidentops.dev.yaml``.

Also here: the action models (``spec.actions[]`` here, ``remediation[].actions[]``
in a policy); their behaviour lives in ``incidentops.actions``.
"""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from incidentops.api.common import (
    API_VERSION,
    ApiModel,
    Condition,
    Duration,
    Identity,
    IncidentType,
    ItemName,
    KindName,
    LabelMap,
    LabelSelector,
    Message,
    NamespaceName,
    ObjectMeta,
    ObjectName,
    PolicyRef,
    Severity,
    Text,
    cel,
    exactly_one,
    list_type,
)

__all__ = [
    "ACTION_TYPES",
    "Acknowledgement",
    "ActionApproval",
    "ActionItem",
    "ActionOrigin",
    "ActionPhase",
    "ActionRecord",
    "ActionTemplate",
    "ActionType",
    "AlertsStatus",
    "Approval",
    "AssessedTarget",
    "AssessmentStatus",
    "BreachKind",
    "ClampedTime",
    "ClampedTimeField",
    "Containment",
    "DrillTargets",
    "EpisodeRecord",
    "EscalationStatus",
    "EvidenceRecord",
    "Impact",
    "Incident",
    "IncidentAction",
    "IncidentMetrics",
    "IncidentSpec",
    "IncidentStatus",
    "MaintenanceAction",
    "MaintenanceBackend",
    "NotificationOutcome",
    "NotificationRecord",
    "Phase",
    "PlannedChange",
    "PolicyRef",
    "PostmortemSpec",
    "PostmortemState",
    "PostmortemStatus",
    "PublicInfo",
    "QuarantineAction",
    "Resolution",
    "Roles",
    "RollbackAction",
    "SLABreach",
    "SLAStatus",
    "ScaleAction",
    "ServiceBackend",
    "SnapshotAction",
    "Source",
    "SourceKind",
    "StatusUpdate",
    "Target",
    "TargetResult",
    "TargetSource",
    "TimelineEntry",
    "UndoRequest",
]

# --- actions -------------------------------------------------------------------------------


class Approval(StrEnum):
    """Whether an action waits for a person."""

    NONE = "none"
    REQUIRED = "required"


class ActionType(StrEnum):
    """The kinds of action, one module each in ``incidentops.actions``."""

    ROLLBACK = "rollback"
    MAINTENANCE = "maintenance"
    QUARANTINE = "quarantine"
    SCALE = "scale"
    SNAPSHOT = "snapshot"


ACTION_TYPES: tuple[str, ...] = tuple(t.value for t in ActionType)
"""The action types, as the field names of an action."""


class RollbackAction(ApiModel):
    """Roll a Deployment back to an earlier ReplicaSet revision, as ``kubectl rollout undo`` does.

    The operator refuses (action phase Skipped, with the reason) when the
    Deployment is paused, when the revision is gone, or when Argo CD or Flux
    manage the Deployment, unless the policy's ``guards.allowGitOpsManaged`` is
    true (GitOps would roll it forward again).
    """

    deployment: ObjectName | None = None
    """The Deployment, in the incident's namespace. Default: each Deployment among the incident's targets."""

    to_revision: int | None = Field(None, ge=1)
    """The revision to return to. Default: the newest revision below the current one."""

    if_changed_within: Duration | None = None
    """Roll back only if the Deployment's template changed within this long before the incident started,
    otherwise skip the action. Default: roll back whenever the action runs."""


class ServiceBackend(ApiModel):
    """A Service port: the maintenance backend of an Ingress."""

    name: ObjectName
    """The Service that serves the maintenance page, in the incident's namespace."""

    port: int = Field(ge=1, le=65535)
    """The Service's port number."""


class MaintenanceBackend(ApiModel):
    """Where traffic goes while maintenance mode is on."""

    selector: LabelMap | None = Field(None, min_length=1, max_length=16)
    """For a Service: the Pod selector that replaces the Service's own (replaced, never merged)."""

    service: ServiceBackend | None = None
    """For an Ingress: the Service that replaces every backend of the Ingress."""


class MaintenanceAction(ApiModel):
    """Put a Service (or an Ingress) into maintenance mode: its traffic goes to a maintenance backend.

    The original selector (or the Ingress's backends) is kept in the action's
    undo data and restored when the incident resolves or is deleted.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.service) != has(self.ingress)", "maintenance sets exactly one of service and ingress"),
                cel(
                    "has(self.service) ? has(self.backend.selector) : has(self.backend.service)",
                    "maintenance of a service needs backend.selector, of an ingress backend.service",
                ),
            ]
        }
    )

    service: ObjectName | None = None
    """The Service to switch, in the incident's namespace."""

    ingress: ObjectName | None = None
    """The Ingress to switch, in the incident's namespace (instead of a Service)."""

    backend: MaintenanceBackend
    """The maintenance backend: a Pod selector for a Service, a Service for an Ingress."""

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.service is None) == (self.ingress is None):
            raise ValueError("maintenance sets exactly one of service and ingress")
        if self.service is not None and not self.backend.selector:
            raise ValueError("maintenance of a service needs backend.selector, of an ingress backend.service")
        if self.ingress is not None and self.backend.service is None:
            raise ValueError("maintenance of a service needs backend.selector, of an ingress backend.service")
        return self


class QuarantineAction(ApiModel):
    """Isolate Pods: collect their evidence first, then relabel them out of their ReplicaSet and Service (the
    ReplicaSet replaces them; they keep running for analysis), and apply a deny-all NetworkPolicy to them.
    Not undone by itself: ``kubectl incident release`` (or deleting the incident) deletes the quarantined
    Pods and the NetworkPolicy. At most 8 Pods, owned by a ReplicaSet or by nothing."""

    selector: LabelSelector | None = None
    """The Pods to quarantine, in the incident's namespace. Default: the incident's selector targets."""


class ScaleAction(ApiModel):
    """Scale a Deployment; the original replica count is kept for undo."""

    deployment: ObjectName | None = None
    """The Deployment, in the incident's namespace. Default: each Deployment among the incident's targets."""

    replicas: int = Field(ge=0, le=10000)
    """The replica count to set."""

    restore_on_resolve: bool = False
    """Set the original replica count back when the incident resolves (if nobody changed it since).
    Default false: the new count stays."""


class SnapshotAction(ApiModel):
    """Collect evidence of the targets into immutable ConfigMaps, recorded in ``status.evidence``.

    Events first (they expire after an hour), then Pod logs (current and previous
    container), then manifests of the targets, their owners and their rollout
    history. Secret values are redacted, never stored.
    """

    events: bool = True
    """Collect the Events of the targets and their Pods. Default true."""

    logs: bool = True
    """Collect Pod logs, of the current and the previous container. Default true."""

    manifests: bool = True
    """Collect the manifests of the targets and their owners, and rollout history. Default true."""

    since_seconds: int = Field(3600, ge=1, le=86400)
    """How far back logs reach, in seconds. Default 3600."""


_ONE_ACTION_TYPE, _check_one_action_type = exactly_one(*ACTION_TYPES, what="an action")


class ActionTemplate(ApiModel):
    """An action: a name, and exactly one of rollback, maintenance, quarantine, scale and snapshot."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ONE_ACTION_TYPE]})

    name: ItemName
    """Names the action, unique in its list; the operator's ledger (``status.actions``) is keyed on it."""

    rollback: RollbackAction | None = None
    """Roll a Deployment back to an earlier revision."""

    maintenance: MaintenanceAction | None = None
    """Switch a Service or an Ingress to a maintenance backend."""

    quarantine: QuarantineAction | None = None
    """Isolate Pods from traffic and the network."""

    scale: ScaleAction | None = None
    """Scale a Deployment."""

    snapshot: SnapshotAction | None = None
    """Collect evidence."""

    @model_validator(mode="after")
    def _exactly_one_type(self) -> Self:
        _check_one_action_type(self)
        return self

    @property
    def type(self) -> ActionType:
        """Which type of action this is."""
        for action_type in ActionType:
            if getattr(self, action_type.value) is not None:
                return action_type
        raise AssertionError("a validated action always has a type")  # pragma: no cover


class IncidentAction(ActionTemplate):
    """An action requested on an incident. Guards apply: drill and dry run, approval, the policy's rate
    limit, protected namespaces."""

    approval: Approval = Approval.NONE
    """none: run at once; required: wait (phase AwaitingApproval) until someone approves it (``approved``,
    or an entry in ``spec.approvals``). Default none."""

    approved: bool | None = None
    """Approves this action: set it to true (RBAC and the API audit log record who did). Any action, a
    policy remediation's too, can also be approved by name in ``spec.approvals``, which says by whom
    (``kubectl incident approve``). Default false."""


class ActionApproval(ApiModel):
    """A person approves an action that waits for approval (``kubectl incident approve NAME ACTION``)."""

    action: ItemName
    """The action's name, as in ``status.actions``."""

    by: Identity
    """Who approves; ``kubectl incident approve`` fills it from the caller's identity (the chart's optional
    admission policy holds it to the requesting user)."""

    at: AwareDatetime
    """When, with a time zone offset."""


class UndoRequest(ApiModel):
    """A person asks the operator to undo an action now (``kubectl incident undo``), or to release a
    quarantine (``kubectl incident release``)."""

    action: ItemName
    """The action's name, as in ``status.actions``."""

    by: Identity
    """Who asks; filled from the caller's identity by the plugin."""

    at: AwareDatetime
    """When, with a time zone offset."""


# --- after the incident: post-mortems and drill assessments ----------------------------------------
# (spec.postmortem, spec.drillTargets and status.assessment; status.postmortem is further down)

PostmortemUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")]
"""An http(s) URL of a finished post-mortem or of an action item's ticket."""


class ActionItem(ApiModel):
    """A follow-up the post-mortem commits to: what, who, by when."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """What is to be done."""

    owner: Identity
    """Who does it."""

    due_by: datetime.date | None = None
    """By when, as a date (``2026-12-31``)."""

    url: PostmortemUrl | None = None
    """The ticket that tracks it."""


class PostmortemSpec(ApiModel):
    """People finish the post-mortem here (``kubectl incident postmortem NAME --complete``), and ask for a
    draft of an optional one (``--draft``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.completed) || !self.completed || has(self.url)"
                    " || (has(self.actionItems) && size(self.actionItems) > 0)",
                    "a completed post-mortem needs a url or at least one action item",
                )
            ]
        }
    )

    draft: bool | None = None
    """Draft a post-mortem although the severity does not require one (the operator writes it once the
    incident is resolved, as it does for a required one). Default false."""

    completed: bool | None = None
    """The post-mortem is done (status.postmortem.state Done): with a ``url`` or at least one action item.
    Once done, and the reopen window passed, the incident is Closed. Default false."""

    url: PostmortemUrl | None = None
    """Where the finished post-mortem is published."""

    action_items: list[ActionItem] = Field(default_factory=list, max_length=32, json_schema_extra=list_type("atomic"))
    """The follow-ups agreed on."""

    @model_validator(mode="after")
    def _completed_needs_substance(self) -> Self:
        if self.completed and self.url is None and not self.action_items:
            raise ValueError("a completed post-mortem needs a url or at least one action item")
        return self


class DrillTargets(ApiModel):
    """A drill's own targets; each one unset is the policy's for the incident's severity (acknowledge,
    resolve), or not assessed (detect, contain: a policy has no such target)."""

    detect: Duration | None = None
    """From the earliest alert's ``startsAt`` (``status.startedAt``) to the incident's creation."""

    acknowledge: Duration | None = None
    """From the episode's start to its acknowledgement (a containment counts)."""

    contain: Duration | None = None
    """From the episode's start to its containment."""

    resolve: Duration | None = None
    """From the episode's start to its resolution."""


class AssessedTarget(StrEnum):
    """What a drill is assessed on."""

    DETECT = "Detect"
    ACKNOWLEDGE = "Acknowledge"
    CONTAIN = "Contain"
    RESOLVE = "Resolve"


class TargetSource(StrEnum):
    """Where a drill's target comes from."""

    DRILL = "drill"
    POLICY = "policy"


class TargetResult(ApiModel):
    """One target of a drill: the time measured against the time allowed."""

    target: AssessedTarget
    """Detect, Acknowledge, Contain or Resolve."""

    within: Duration
    """The time allowed."""

    source: TargetSource
    """drill (``spec.drillTargets``) or policy (the severity's response times)."""

    seconds: int | None = Field(None, ge=0)
    """The time measured; unset when it never happened (failed)."""

    passed: bool
    """Measured, and not longer than allowed."""


class AssessmentStatus(ApiModel):
    """A drill's assessment, written once when the drill is resolved (instead of a post-mortem)."""

    ref: ObjectName | None = None
    """The ConfigMap holding the assessment (Markdown), once stored."""

    assessed_at: datetime.datetime
    """When the drill was assessed (its resolution)."""

    passed: bool
    """Every target passed."""

    results: list[TargetResult] = Field(default_factory=list, max_length=4, json_schema_extra=list_type("atomic"))
    """Each target assessed, pass or fail."""


# --- spec ------------------------------------------------------------------------------------


class SourceKind(StrEnum):
    """Where an incident came from."""

    MANUAL = "manual"
    ALERTMANAGER = "alertmanager"


class Source(ApiModel):
    """Where the incident came from; immutable once set."""

    kind: SourceKind
    """``manual`` (a person created it) or ``alertmanager`` (the receiver created it from an alert group)."""

    receiver: Annotated[str, StringConstraints(max_length=253)] | None = None
    """The Alertmanager receiver that sent the group."""

    group_key: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """Alertmanager's groupKey; with the receiver it identifies the incident (one incident per group)."""

    labels: LabelMap | None = Field(None, max_length=64)
    """The alert group's common labels. Policy selectors and classification rules match on them together
    with the incident's own labels (alert label values need not be valid Kubernetes label values)."""

    started_at: AwareDatetime | None = None
    """When the problem started, as the receiver saw it: the earliest ``startsAt`` of the group's firing
    alerts, never later than when the receiver got them (a sender's clock ahead of ours is clamped, and the
    timeline says so); Alertmanager's zero time means unknown. ``status.startedAt`` is this (detection is
    the time from it to the creation); the first episode and its deadlines start at the creation, so an alert
    that fired long before it reached the receiver does not page every level at once. Default: the
    incident's creation."""

    previous: ObjectName | None = None
    """The incident the same alert group made before, whose reopen window had passed when the group fired
    again: the receiver opened this one instead of reopening that one (which still waits for its
    post-mortem)."""


class Target(ApiModel):
    """A workload concerned by the incident: a named object, or the Pods a selector picks.
    Actions and evidence default to the targets."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.name) != has(self.selector)", "a target sets exactly one of name and selector"),
                cel("!has(self.name) || has(self.kind)", "a target with a name needs a kind"),
            ]
        }
    )

    kind: KindName | None = None
    """The kind of the named object, e.g. Deployment, StatefulSet, Service, Ingress. With a selector: the
    kind selected, default Pod."""

    name: ObjectName | None = None
    """The object's name."""

    namespace: NamespaceName | None = None
    """The object's namespace. Default: the incident's."""

    selector: LabelSelector | None = None
    """Instead of a name: a label selector."""

    @model_validator(mode="after")
    def _name_or_selector(self) -> Self:
        if (self.name is None) == (self.selector is None):
            raise ValueError("a target sets exactly one of name and selector")
        if self.name is not None and self.kind is None:
            raise ValueError("a target with a name needs a kind")
        return self


class Acknowledgement(ApiModel):
    """Someone has taken the incident: escalation stops paging (levels ``until: acknowledged``)."""

    by: Identity
    """Who acknowledged; ``kubectl incident ack`` fills it from the caller's identity."""

    at: AwareDatetime
    """When, with a time zone offset (``Z`` or ``+02:00``; a time without one is refused). It counts for the
    current episode only if it is not before ``status.episodeStartedAt``: after a reopen, acknowledge again
    with a new ``at``. A time ahead of the operator's clock counts as the moment the operator received it
    (``status.clampedTimes``)."""

    note: Text | None = None
    """A note for the timeline."""


class Containment(ApiModel):
    """The impact is contained (for example by rollback or maintenance mode), not yet resolved."""

    by: Identity
    """Who declared containment. Containment counts as acknowledgement: it stops the ``until:
    acknowledged`` levels, and is the time to acknowledge when nobody acknowledged."""

    at: AwareDatetime
    """When, with a time zone offset. It counts for the current episode only if it is not before
    ``status.episodeStartedAt``; a time ahead of the operator's clock counts as the moment of receipt."""

    note: Text | None = None
    """A note for the timeline."""


class Resolution(ApiModel):
    """The incident is resolved: escalation stops, undoable actions are undone, the post-mortem clock starts."""

    by: Identity
    """Who resolved it."""

    at: AwareDatetime
    """When, with a time zone offset. It counts for the current episode only if it is not before
    ``status.episodeStartedAt``; a time ahead of the operator's clock counts as the moment of receipt."""

    summary: Text | None = None
    """What happened and what fixed it."""

    root_cause: Text | None = None
    """The root cause, when known; goes into the post-mortem draft."""


class StatusUpdate(ApiModel):
    """The latest update to stakeholders: announced on the incident's channels, and resets
    ``status.sla.nextUpdateBy``."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """The update."""

    by: Identity
    """Who wrote it."""

    at: AwareDatetime
    """When, with a time zone offset; a new value is a new update. A time ahead of the operator's clock
    counts as the moment of receipt."""


class Roles(ApiModel):
    """The incident command roles, as people claim them (shown by ``describe`` and in the post-mortem)."""

    commander: Identity | None = None
    """The incident commander: coordinates and decides."""

    technical_lead: Identity | None = None
    """Leads the investigation and the fix."""

    communications: Identity | None = None
    """Writes the status updates to stakeholders and the public."""


class Impact(ApiModel):
    """What the incident costs; drives impact escalation and regulatory clocks."""

    users_affected: int | None = Field(None, ge=0)
    """How many users are affected."""

    services: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=32, json_schema_extra=list_type("set")
    )
    """The services affected."""

    estimated_cost: int | None = Field(None, ge=0)
    """Estimated cost so far, in whole currency units. Compared with the policy's ``impactEscalation[].above``."""

    data_exposed: bool | None = None
    """Whether personal data was exposed. For a security incident this starts the 72h clocks
    ``status.sla.notifyUsersBy`` and ``notifyRegulatorBy``. Default false."""


class PublicInfo(ApiModel):
    """What the public status page shows about the incident."""

    components: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=32, json_schema_extra=list_type("set")
    )
    """The status page components affected."""

    message: Text | None = None
    """The public message. Default: a generic message for the phase."""


class IncidentSpec(ApiModel):
    """What people (and the Alertmanager receiver) say about the incident. Everything but ``title`` is
    optional."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(oldSelf.source) || has(self.source)", "source cannot be removed once set"),
                cel(
                    "!has(oldSelf.acknowledgement) || has(self.acknowledgement)",
                    "acknowledgement cannot be removed once set",
                ),
                cel("!has(oldSelf.containment) || has(self.containment)", "containment cannot be removed once set"),
                cel("!has(oldSelf.resolution) || has(self.resolution)", "resolution cannot be removed once set"),
            ]
        }
    )

    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """A one-line summary, used in every notification."""

    description: Text | None = None
    """More detail."""

    severity: Severity | None = None
    """P1 (most severe) to P4. Unset: the policy's ``classification`` decides. ``status.severity`` holds the
    effective value."""

    type: IncidentType | None = None
    """availability, performance, security, data or integration. Unset: classification may set it."""

    source: Source | None = Field(
        None, json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", "source is immutable once set")]}
    )
    """Where the incident came from; immutable once set. Default: manual."""

    targets: list[Target] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("atomic"))
    """The workloads concerned; actions and evidence default to these (the receiver fills it from the
    alerts' workload labels)."""

    escalation_policy_ref: PolicyRef | None = None
    """Use this EscalationPolicy instead of selecting one."""

    acknowledgement: Acknowledgement | None = None
    """Set when someone takes the incident; cannot be removed once set."""

    containment: Containment | None = None
    """Set when the impact is contained; cannot be removed once set."""

    resolution: Resolution | None = None
    """Set when the incident is resolved; cannot be removed once set. A resolution that comes from the
    alerts is recorded in status (condition Resolved, reason AlertsResolved), never here."""

    status_update: StatusUpdate | None = None
    """The latest update to stakeholders."""

    roles: Roles | None = None
    """Who holds the incident command roles. The commander is named in notifications; reminders about an
    unclaimed role are not built yet."""

    impact: Impact | None = None
    """What the incident costs. ``dataExposed`` starts the regulatory clocks of a security incident;
    ``estimatedCost`` is not yet acted on (impact escalation is not built yet)."""

    public: PublicInfo | None = None
    """For the public status page (not yet acted on: the status page is not built yet)."""

    actions: list[IncidentAction] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_type("map", "name")
    )
    """Requested actions. The policy's remediation adds more, in status only (``status.actions`` is the
    ledger of both)."""

    approvals: list[ActionApproval] = Field(
        default_factory=list, max_length=32, json_schema_extra=list_type("map", "action")
    )
    """Approvals of actions that wait for one, by action name, with who and when."""

    undo: list[UndoRequest] = Field(default_factory=list, max_length=32, json_schema_extra=list_type("map", "action"))
    """Actions to undo now, by name: a maintenance switch or a scale is set back, a quarantine released
    (its Pods deleted, they were replaced, and its NetworkPolicy removed). A rollback is not undone."""

    drill: bool | None = None
    """A rehearsal: every action is a dry run and every message says DRILL. Default false. A resolved drill
    is assessed (``status.assessment``) instead of getting a post-mortem."""

    drill_targets: DrillTargets | None = None
    """A drill's targets (detect, acknowledge, contain, resolve). Default: the policy's response times for
    the severity (acknowledge, resolve)."""

    postmortem: PostmortemSpec | None = None
    """The post-mortem, as people finish it: completed with a url or action items; or a request to draft
    an optional one."""


# --- status ------------------------------------------------------------------------------------


class Phase(StrEnum):
    """One word for people, derived from the conditions."""

    TRIGGERED = "Triggered"
    ACKNOWLEDGED = "Acknowledged"
    CONTAINED = "Contained"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


class BreachKind(StrEnum):
    """Which deadline was missed."""

    ACKNOWLEDGE = "Acknowledge"
    RESOLVE = "Resolve"
    UPDATE = "Update"
    NOTIFY_USERS = "NotifyUsers"
    NOTIFY_REGULATOR = "NotifyRegulator"
    POSTMORTEM = "Postmortem"


class SLABreach(ApiModel):
    """A missed deadline."""

    kind: BreachKind
    """Which deadline."""

    deadline: datetime.datetime
    """When it was due."""

    at: datetime.datetime
    """When the operator noticed the breach."""


class SLAStatus(ApiModel):
    """The incident's deadlines for this episode, from the policy's ``severities``."""

    acknowledge_by: datetime.datetime | None = None
    """Acknowledge before this (episode start + acknowledgeWithin)."""

    resolve_by: datetime.datetime | None = None
    """Resolve before this (episode start + resolveWithin)."""

    next_update_by: datetime.datetime | None = None
    """Post a status update before this (the last update, or the episode start, + updateEvery)."""

    next_deadline: datetime.datetime | None = None
    """The earliest deadline still open, for the printer column."""

    breaches: list[SLABreach] = Field(default_factory=list, max_length=32, json_schema_extra=list_type("atomic"))
    """Deadlines missed in this episode, each kind at most once (a later severity or policy change moves a
    deadline, never adds a second breach of the same kind)."""

    notify_users_by: datetime.datetime | None = None
    """For a security incident with exposed data: notify the affected users before this (72h)."""

    notify_regulator_by: datetime.datetime | None = None
    """For a security incident with exposed data: notify the regulator before this (72h)."""


class EscalationStatus(ApiModel):
    """The escalation cursor. Progress is read from here, never from the bounded ``notifications``."""

    round: int = Field(0, ge=0)
    """The repeat round, 0 first; round k starts at episode start + k x ``repeat.every``."""

    level: int | None = Field(None, ge=0)
    """Index into the policy's levels of the latest level reached; unset before the first."""

    level_name: ItemName | None = None
    """Name of that level."""

    next_at: datetime.datetime | None = None
    """When the next level (or round) is due; unset when nothing more is due."""

    notified: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=256, json_schema_extra=list_type("atomic")
    )
    """Notification keys done in this episode and round."""

    exhausted: bool = False
    """Every level and round has been notified and nobody acknowledged."""


class NotificationOutcome(StrEnum):
    """What became of a notification."""

    PENDING = "Pending"
    SENT = "Sent"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class NotificationRecord(ApiModel):
    """One notification to one channel (bounded list, newest kept)."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Hash of (incident uid, episode, round, level name, channel name, event): stable across retries,
    restarts and failovers, so nothing is sent twice."""

    channel: ItemName
    """The policy channel."""

    event: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """What was announced, e.g. Triggered, Escalated, Acknowledged, Resolved, SLABreached, StatusUpdate."""

    level: Annotated[str, StringConstraints(max_length=63)] | None = None
    """The escalation level, for notifications sent by a level."""

    at: datetime.datetime
    """When it was (last) attempted."""

    outcome: NotificationOutcome
    """Pending, Sent, Failed or Skipped."""

    attempts: int = Field(0, ge=0)
    """How many times it was attempted."""

    message: Message | None = None
    """The error of the last failed attempt, or why it was skipped."""


class AlertsStatus(ApiModel):
    """The alert group, as of the latest Alertmanager POST (each carries the whole group)."""

    firing: int = Field(0, ge=0)
    """Alerts firing."""

    resolved: int = Field(0, ge=0)
    """Alerts resolved."""

    truncated: int = Field(0, ge=0)
    """Alerts Alertmanager left out of the POST (its ``truncatedAlerts``)."""

    last_received_at: datetime.datetime | None = None
    """When the latest POST arrived."""

    last_fired_at: datetime.datetime | None = None
    """When the receiver last saw the group fire again: a POST with firing alerts after one with none (unset
    until then). Only this transition reopens a resolved incident (a re-send of a group that never stopped
    firing does not), and the new episode starts here."""

    sample: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20, json_schema_extra=list_type("atomic")
    )
    """Fingerprints of some of the alerts (capped)."""


class ActionPhase(StrEnum):
    """Where an action is in its life."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    UNDONE = "Undone"


class ActionOrigin(StrEnum):
    """Who asked for an action."""

    SPEC = "spec"
    REMEDIATION = "remediation"


class PlannedChange(ApiModel):
    """One change an action makes (or, in a dry run, would make)."""

    object: Annotated[str, StringConstraints(max_length=512)]
    """The object, as ``Kind namespace/name``."""

    field: Annotated[str, StringConstraints(max_length=256)]
    """The field, e.g. ``spec.template``, ``spec.selector``, ``metadata.labels``."""

    old: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """What it is now (in short, for a template: its revision and images)."""

    new: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """What it becomes."""


class ActionRecord(ApiModel):
    """The ledger entry of one action. Before changing anything an action records Running with its key and
    plan; after a restart the operator looks at the cluster to finish or to skip it, never to do it twice."""

    name: ItemName
    """The action's name (from ``spec.actions`` or the policy's remediation)."""

    type: ActionType
    """rollback, maintenance, quarantine, scale or snapshot."""

    origin: ActionOrigin | None = None
    """spec (requested on the incident) or remediation (added by the policy)."""

    phase: ActionPhase
    """Pending, AwaitingApproval, Running, Succeeded, Failed, Skipped or Undone."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Idempotency key of this execution (stable across restarts)."""

    started_at: datetime.datetime | None = None
    """When it started running."""

    finished_at: datetime.datetime | None = None
    """When it reached Succeeded, Failed, Skipped or Undone."""

    message: Message | None = None
    """What happened, or why it was skipped or failed."""

    reason: Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9]*$")] | None = None
    """Why it is in its phase, a CamelCase constant (e.g. ApprovalRequired, RateLimited, DeploymentPaused)."""

    target: Annotated[str, StringConstraints(max_length=512)] | None = None
    """The object it acts on, as ``Kind namespace/name`` (or the selector, for Pods)."""

    approved_by: Identity | None = None
    """Who approved it, when it needed approval."""

    dry_run: bool | None = None
    """Only planned, not executed (drill, guard, or the policy's dry run)."""

    plan: Text | None = None
    """The exact change, in one sentence, shown in dry runs."""

    changes: list[PlannedChange] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("atomic"))
    """The exact change, field by field: the object, the field, its old and its new value."""

    verify_by: datetime.datetime | None = None
    """While Running: when verification gives up (a rollback: the Deployment's progressDeadlineSeconds)."""

    undo: dict[str, Annotated[str, StringConstraints(max_length=4096)]] | None = Field(None, max_length=16)
    """What undo needs (the original selector, replica count), as JSON texts."""

    undone_at: datetime.datetime | None = None
    """When it was undone (phase Undone)."""


class EvidenceRecord(ApiModel):
    """One evidence collection, stored as immutable gzip'd ConfigMaps labelled to the incident."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """What was collected, e.g. the snapshot action's name."""

    ref: ObjectName
    """The manifest ConfigMap, which lists the chunks."""

    sha256: Annotated[str, StringConstraints(min_length=64, max_length=64, pattern=r"^[a-f0-9]{64}$")]
    """SHA-256 over all items (the manifest's digest)."""

    bytes: int = Field(ge=0)
    """Uncompressed size of all items."""

    items: int = Field(ge=0)
    """Number of items."""

    collected_at: datetime.datetime
    """When the collection finished."""


class TimelineEntry(ApiModel):
    """A line of the incident's timeline (bounded; the full record goes to evidence)."""

    at: datetime.datetime
    """When it happened."""

    kind: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    """What happened, a CamelCase word (usually a reason from ``incidentops.api.reasons``)."""

    message: Message
    """What happened, for people."""

    actor: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Who did it: a user, ``alertmanager`` or ``operator``."""


class IncidentMetrics(ApiModel):
    """Response times of the current episode, from its start (``status.episodeStartedAt``). Containment
    counts as acknowledgement when nobody acknowledged."""

    time_to_acknowledge_seconds: int | None = Field(None, ge=0)
    """From start to acknowledgement."""

    time_to_contain_seconds: int | None = Field(None, ge=0)
    """From start to containment."""

    time_to_resolve_seconds: int | None = Field(None, ge=0)
    """From start to resolution."""


class EpisodeRecord(ApiModel):
    """A closed episode: when it ran and how fast people responded (``status.metrics`` is the current one)."""

    episode: int = Field(ge=1)
    """The episode's number."""

    started_at: datetime.datetime
    """When it started."""

    resolved_at: datetime.datetime | None = None
    """When it was resolved."""

    time_to_acknowledge_seconds: int | None = Field(None, ge=0)
    """From its start to its acknowledgement (or containment)."""

    time_to_contain_seconds: int | None = Field(None, ge=0)
    """From its start to its containment."""

    time_to_resolve_seconds: int | None = Field(None, ge=0)
    """From its start to its resolution."""

    breaches: list[BreachKind] = Field(default_factory=list, max_length=8, json_schema_extra=list_type("set"))
    """The deadlines it missed."""


class ClampedTimeField(StrEnum):
    """The spec fields whose ``at`` a person gives."""

    ACKNOWLEDGEMENT = "acknowledgement"
    CONTAINMENT = "containment"
    RESOLUTION = "resolution"
    STATUS_UPDATE = "statusUpdate"


class ClampedTime(ApiModel):
    """A time a person gave that was ahead of the operator's clock, and the moment the operator received it,
    which counts instead (a laptop clock ahead must not stop the paging of a later episode)."""

    field: ClampedTimeField
    """Which spec field: acknowledgement, containment, resolution or statusUpdate."""

    at: datetime.datetime
    """The ``at`` the spec gives."""

    received_at: datetime.datetime
    """When the operator first saw it: the time that counts."""


class PostmortemState(StrEnum):
    """Where the post-mortem is."""

    NOT_REQUIRED = "NotRequired"
    """Resolved; the severity does not require one and nobody asked for a draft."""
    PENDING = "Pending"
    """Resolved; the draft is being written."""
    DRAFT = "Draft"
    """The draft is written (``ref``), awaiting people's completion."""
    OVERDUE = "Overdue"
    """Past ``dueBy`` and not completed: reminded about every day."""
    DONE = "Done"
    """``spec.postmortem.completed``."""


class PostmortemStatus(ApiModel):
    """The post-mortem, required or optional by severity (policy ``severities``)."""

    ref: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """The ConfigMap holding the draft (Markdown, key ``postmortem.md``), once written."""

    due_by: datetime.datetime | None = None
    """When a required post-mortem is due (resolution + the severity's postmortemWithin); unset for an
    optional one."""

    state: PostmortemState | None = None
    """NotRequired, Pending (the draft is being written), Draft, Overdue or Done."""

    episode: int | None = Field(None, ge=1)
    """The episode whose resolution it follows (a reopen starts a new draft at the next resolution)."""

    reminded_at: datetime.datetime | None = None
    """When the latest overdue reminder was due."""


class IncidentStatus(ApiModel):
    """What the operator observed and did. Owned by the operator; every write carries a resourceVersion
    precondition."""

    observed_generation: int | None = Field(None, ge=0)
    """The ``metadata.generation`` last acted upon."""

    phase: Phase | None = None
    """Triggered, Acknowledged, Contained, Resolved or Closed: a summary of the conditions, for people."""

    episode: int | None = Field(None, ge=1)
    """1 at first; a new episode starts when the alerts fire again within the reopen window after
    resolution."""

    episode_started_at: datetime.datetime | None = None
    """When the current episode started; deadlines and escalation count from it."""

    reopen_count: int = Field(0, ge=0)
    """How many times the incident reopened."""

    conditions: list[Condition] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("map", "type"))
    """Ready, Acknowledged, Contained, Resolved, AlertsResolved, SLABreached and EscalationExhausted, every
    one set from the first visit (Unknown when unknown)."""

    severity: Severity | None = None
    """The effective severity: the spec's, or the classified one."""

    type: IncidentType | None = None
    """The effective type: the spec's, or the classified one."""

    escalation_policy: (
        Annotated[
            str,
            StringConstraints(
                max_length=317,
                pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            ),
        ]
        | None
    ) = None
    """The policy in effect, as ``namespace/name``."""

    started_at: datetime.datetime | None = None
    """When the problem started: ``spec.source.startedAt`` (the earliest firing alert's start, as the
    receiver saw it), else the creation time; never later than the creation. The first episode starts at the
    creation."""

    acknowledged_by: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Who acknowledged the current episode, or contained it (which counts as acknowledgement); unset while
    nobody has. The ``Acked-By`` column."""

    reopen_until: datetime.datetime | None = None
    """While Resolved: the end of the reopen window (the resolution + the policy's ``alerts.reopenWindow``).
    Until then the group firing again reopens this incident (a new episode); after it the receiver opens a
    new incident that names this one in ``spec.source.previous``."""

    clamped_times: list[ClampedTime] = Field(
        default_factory=list, max_length=4, json_schema_extra=list_type("map", "field")
    )
    """People's times that were ahead of the operator's clock, one per spec field, and when they were
    received (the time that counts)."""

    episodes: list[EpisodeRecord] = Field(default_factory=list, max_length=20, json_schema_extra=list_type("atomic"))
    """Each closed episode's times (the newest 20); the current episode is ``metrics``."""

    sla: SLAStatus | None = None
    """Deadlines and breaches."""

    escalation: EscalationStatus | None = None
    """The escalation cursor."""

    notifications: list[NotificationRecord] = Field(
        default_factory=list, max_length=100, json_schema_extra=list_type("atomic")
    )
    """Notifications sent (bounded, newest kept)."""

    alerts: AlertsStatus | None = None
    """The alert group, for alert-born incidents."""

    actions: list[ActionRecord] = Field(default_factory=list, max_length=32, json_schema_extra=list_type("atomic"))
    """The action ledger."""

    evidence: list[EvidenceRecord] = Field(default_factory=list, max_length=32, json_schema_extra=list_type("atomic"))
    """Evidence collected."""

    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=100, json_schema_extra=list_type("atomic"))
    """What happened, in order (bounded, newest kept)."""

    metrics: IncidentMetrics | None = None
    """Response times of the current episode."""

    postmortem: PostmortemStatus | None = None
    """The post-mortem (not for a drill: see ``assessment``)."""

    assessment: AssessmentStatus | None = None
    """A resolved drill's assessment against its targets."""


# --- the object ----------------------------------------------------------------------------------


class Incident(ApiModel):
    """An incident: something is wrong, and people and the operator respond to it."""

    KIND: ClassVar[str] = "Incident"
    PLURAL: ClassVar[str] = "incidents"
    SINGULAR: ClassVar[str] = "incident"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("inc",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        {"name": "Severity", "type": "string", "jsonPath": ".status.severity", "description": "Effective severity."},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the incident is."},
        {
            "name": "Level",
            "type": "string",
            "jsonPath": ".status.escalation.levelName",
            "description": "The escalation level reached.",
        },
        {
            "name": "Acked-By",
            "type": "string",
            "jsonPath": ".status.acknowledgedBy",
            "description": "Who acknowledged (or contained) the current episode.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Policy",
            "type": "string",
            "jsonPath": ".status.escalationPolicy",
            "priority": 1,
            "description": "The EscalationPolicy in effect.",
        },
        {
            "name": "Next-Deadline",
            "type": "string",
            "jsonPath": ".status.sla.nextDeadline",
            "priority": 1,
            "description": "The earliest open deadline.",
        },
        {
            "name": "Message",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
            "priority": 1,
            "description": "The Ready condition's message.",
        },
    )

    api_version: str = API_VERSION
    kind: str = "Incident"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: IncidentSpec
    status: IncidentStatus = Field(default_factory=IncidentStatus)
