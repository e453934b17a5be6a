"""The domain: the pure heart of incidentops. Every decision the operator makes is taken here.

Where it sits: between the API models (``incidentops.api``, below) and the
glue that talks to the world (handlers, the scheduler, the Alertmanager
receiver, the notifiers, above). Everything here is a function of
(policy, incident, now) returning a decision: which policy applies, what the
status should be, which notifications are due now, which Events to post, and
when to look again. ``now`` is always passed in; nothing here reads a clock,
touches the network or the Kubernetes API, or keeps state between calls. The
status of the Incident is the only memory, so a restarted operator carries on
exactly where the last one stopped.

Handlers, the scheduler and the receiver never decide: they read objects, call
the domain, act on its answer (send, post Events, write status) and requeue at
the answer's ``wake_at``.

The flow, module by module:

- ``selection``: which EscalationPolicy applies, and the effective severity and
  type (classification by the highest-priority candidate).
- ``readiness``: whether a policy's channels can be used (from facts about
  Secrets, never their values).
- ``lifecycle``: episodes and reopening, the conditions, the phase, metrics,
  closing and the post-mortem hook.
- ``sla``: the deadlines of the episode, breaches, the rolling update deadline,
  regulatory clocks.
- ``escalation``: notification keys and the level/round schedule (who is paged
  now, when the next page is due, whether the chain is exhausted).
- ``announcements``: the other notifications (acknowledged, resolved,
  status-update, update-due, sla-breached) to the channels already reached.
- ``timeline``: bounded timeline entries.
- ``alertgroups``: what an Alertmanager POST means for its Incident (name,
  namespace, spec, ``status.alerts``), for the intake; ``plan`` reads the
  ``status.alerts`` it produces to resolve and reopen.
- ``decisions`` (:class:`Due`, :class:`Transition`) and ``common`` (time and
  text helpers) underpin the rest.
- ``plan``: the one entry point combining them (:func:`plan`), and
  :func:`record_deliveries` to fold what was sent back into the status.

Import from the modules (``from incidentops.domain.plan import plan, Due``);
this package re-exports nothing, so ``incidentops.domain.plan`` stays the module.
"""
