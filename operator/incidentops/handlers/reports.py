"""The monthly report: each policy's ``reports.monthly``, sent on the first day of each month.

Where it sits: a part of the leader beside the incidents' scheduler. The policies' watch
(``registry.py``) hands every policy to :meth:`MonthlyReports.seen`, which queues it in a
:class:`~incidentops.handlers.scheduler.Scheduler` of its own (policies, not incidents; the same priority
queue, backoff and error kinds) at the time ``domain.monthly.next_wake`` gives: the next due time, never a
sleep. When a policy's time comes, :meth:`MonthlyReports.process` reads it afresh and asks
``domain.monthly.step``; if a report is due it

1. writes the step's record into the policy's ``status.reports.monthly`` (the month, Sending, each channel
   Pending with its key), before anything is sent;
2. lists the incidents the policy governs (``status.escalationPolicy`` names it), builds the month's
   report (``domain.report``) and sends its Markdown to each Pending channel through the delivery
   machinery: the channel made as for a page (``handlers.delivery.Deliverer``: labelled Secrets only), a
   turn of its destination's rate limit (the delivery queue's lanes), one attempt judged by
   ``domain.delivery.after_attempt``;
3. records each outcome (``domain.monthly.record``); a transient failure stays Pending and the policy is
   queued again at the retry time.

Why this is once per month: see ``domain.monthly``. In short, the record comes before the send, every copy
of one month's report to one channel has the same key, and a month recorded Sent is done.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import random
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from incidentops import kube, notify
from incidentops.api import EscalationPolicy, EscalationPolicyStatus
from incidentops.api.policy import ReportDelivery
from incidentops.domain import delivery, monthly, report, report_text
from incidentops.domain.delivery import Attempted, RetryRules
from incidentops.handlers.delivery import ChannelProblem, Deliverer
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.queue import Health
from incidentops.handlers.scheduler import Key, Scheduler
from incidentops.notify.ratelimit import Lanes

logger = logging.getLogger("incidentops.reports")


def _policy(body: dict[str, Any]) -> EscalationPolicy | None:
    try:
        return EscalationPolicy.model_validate(body)
    except ValidationError:
        return None  # the policy monitor shows why (Ready=False, SpecInvalid)


class MonthlyReports:
    def __init__(
        self, deps: Dependencies, deliverer: Deliverer, lanes: Lanes, rules: RetryRules, health: Health
    ) -> None:
        self.deps = deps
        self.deliverer = deliverer
        self.lanes = lanes
        self.rules = rules
        self.health = health
        self._generations: dict[Key, tuple[Any, Any]] = {}
        self.scheduler = Scheduler(self.process, deps.clock, concurrency=2, noun="policy", metered=False)

    # -- what the watch tells us -----------------------------------------------------------------------

    def seen(self, body: dict[str, Any]) -> None:
        """A policy as the watch saw it: queued at its next report time (forgotten without reports).

        Only a new policy or a new generation of one is queued: a status write (ours, recording an attempt)
        must not bring a retry forward, which ``process`` queued at its own time."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        generation = (meta.get("uid"), meta.get("generation"))
        if self._generations.get(key) == generation:
            return
        self._generations[key] = generation
        policy = _policy(body)
        wake = monthly.next_wake(policy, self.deps.clock()) if policy is not None else None
        if wake is None:
            self.scheduler.forget(key)
        else:
            self.scheduler.poke(key, wake)

    def forget(self, key: Key) -> None:
        self._generations.pop(key, None)
        self.scheduler.forget(key)

    async def run(self, stop: asyncio.Event) -> None:
        await self.scheduler.run(stop)

    # -- one policy --------------------------------------------------------------------------------------

    async def process(self, key: Key) -> datetime.datetime | None:
        """Send what is due of the policy ``key``; when to look at it again."""
        namespace, name = key
        try:
            body = await kube.read(self.deps.api, kube.POLICIES, namespace, name)
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise
        policy = _policy(body)
        now = self.deps.clock()
        if policy is None:
            return None
        step = monthly.step(policy, now)
        if step is None:
            return monthly.next_wake(policy, now)
        logger.info(
            "monthly report of %s for policy %s/%s is due (%s); recording it, then sending it to %s",
            step.period.label,
            namespace,
            name,
            step.due_at.isoformat(),
            ", ".join(c.name for c in step.pending) or "no channel",
        )
        written = await self._write(key, lambda current: monthly.step(current, self.deps.clock()), body)
        if written is None:
            return self.deps.clock()  # changed meanwhile (or gone): look again
        policy, step = written
        if not step.pending:
            return monthly.next_wake(policy, self.deps.clock())
        message = await self._report(policy, step)
        monthly_spec = policy.spec.reports.monthly if policy.spec.reports is not None else None
        notified = frozenset(monthly_spec.notify) if monthly_spec is not None else frozenset()
        retry_at: datetime.datetime | None = None
        for channel in step.pending:
            outcome, attempts, text, when = await self._send(policy, channel, message, step.retried_since)
            recorded = functools.partial(self._recorded, step, channel.name, outcome, attempts, text, notified)
            again = await self._write(key, recorded, None)
            if again is not None:
                policy = again[0]
            if when is not None:
                retry_at = when if retry_at is None else min(retry_at, when)
            logger.info(
                "monthly report of %s for policy %s/%s to channel %r: %s (%s)",
                step.period.label,
                namespace,
                name,
                channel.name,
                outcome,
                text,
            )
        return retry_at or monthly.next_wake(policy, self.deps.clock())

    def _recorded(
        self,
        step: monthly.Step,
        channel: str,
        outcome: str,
        attempts: int,
        text: str,
        notified: frozenset[str],
        current: EscalationPolicy,
    ) -> monthly.Step | None:
        """The record of one channel's outcome on ``current`` (None: the record is of another month now)."""
        mine = current.status.reports.monthly if current.status.reports is not None else None
        if mine is None or mine.period != step.period.label:
            return None
        status = monthly.record(mine, channel, outcome, attempts, text, self.deps.clock(), still_notified=notified)
        return monthly.Step(step.period, step.due_at, status, ())

    async def _write(
        self, key: Key, decide: Callable[[EscalationPolicy], monthly.Step | None], body: dict[str, Any] | None
    ) -> tuple[EscalationPolicy, monthly.Step] | None:
        """Write the ``monthly.Step`` that ``decide(policy)`` gives into the policy's status, from a fresh read
        on conflict; the policy as written and the step, or None when there was nothing to write."""
        namespace, name = key
        decided: list[tuple[EscalationPolicy, monthly.Step]] = []

        def mutate(current: dict[str, Any]) -> dict[str, Any] | None:
            decided.clear()
            policy = _policy(current)
            if policy is None:
                return None
            step = decide(policy)
            if step is None:
                return None
            status: EscalationPolicyStatus = policy.status.model_copy(
                update={"reports": monthly.with_monthly(policy.status.reports, step.status)}
            )
            decided.append((policy.model_copy(update={"status": status}), step))
            result: dict[str, Any] = status.to_dict()
            return result

        written = await kube.write_status(self.deps.api, kube.POLICIES, namespace, name, mutate, body=body)
        if not decided:
            return None
        if written is None:
            return decided[0]  # nothing to change: the record already says so
        policy = _policy(written)
        return (policy, decided[0][1]) if policy is not None else None

    async def _report(self, policy: EscalationPolicy, step: monthly.Step) -> tuple[str, str, dict[str, Any]]:
        """The month's report of the incidents ``policy`` governs: subject, Markdown, JSON."""
        namespace, name = policy.metadata.namespace or "", policy.metadata.name or ""
        ref = f"{namespace}/{name}"
        scopes: list[str | None] = list(self.deps.settings.watch_namespaces) or [None]
        items = [
            item
            for scope in scopes
            for item in await kube.list_objects(self.deps.api, kube.INCIDENTS, scope)
            if (item.get("status") or {}).get("escalationPolicy") == ref
        ]
        result = report.build(items, step.period, self.deps.clock(), policies={ref: policy}, scope=f"policy {ref}")
        subject = f"{report_text.title(result)} ({ref})"
        return subject, report_text.markdown(result), result.model_dump(mode="json")

    async def _send(
        self,
        policy: EscalationPolicy,
        channel: ReportDelivery,
        message: tuple[str, str, dict[str, Any]],
        due_at: datetime.datetime,
    ) -> tuple[str, int, str, datetime.datetime | None]:
        """One attempt of the report to one channel: (outcome, attempts, message, retry at)."""
        namespace, name = policy.metadata.namespace or "", policy.metadata.name or ""
        subject, text, data = message
        attempts = channel.attempts + 1
        spec = policy.spec.channel(channel.name)
        try:
            if spec is None:
                raise ChannelProblem(f"channel {channel.name!r} is not defined by the policy", retryable=False)
            secrets = await self.deliverer.secrets_for(namespace, spec)
            try:
                built = notify.build_channel(spec, secrets, session=self.deliverer.session, retry=self.deliverer.retry)
            except notify.ChannelConfigError as exc:
                raise ChannelProblem(str(exc), secret=bool(spec.secret_key_refs())) from exc
        except ChannelProblem as problem:
            self.health.observe(
                (namespace, name),
                channel.name,
                delivered=False,
                permanent=not problem.retryable,
                message=str(problem),
                secret_problem=problem.secret,
            )
            attempt = Attempted(False, str(problem), retryable=problem.retryable)
        else:
            lane = self.lanes.get(built.destination, built.rate_limit)
            async with lane.turn():
                outcome = await built.send_report(
                    notify.ReportMessage(
                        key=channel.key,
                        channel=channel.name,
                        policy=f"{namespace}/{name}",
                        period=data["period"],
                        subject=subject,
                        text=text,
                        at=self.deps.clock(),
                        data=data,
                    )
                )
            self.health.observe(
                (namespace, name),
                channel.name,
                delivered=outcome.delivered,
                permanent=not outcome.delivered and not outcome.retryable,
                message=outcome.reason,
            )
            attempt = Attempted(outcome.delivered, outcome.reason, outcome.retryable, outcome.retry_after)
        verdict = delivery.after_attempt(
            self.rules, attempt, attempts=attempts, due_at=due_at, now=self.deps.clock(), jitter=random.uniform(-1, 1)
        )
        kind = {delivery.DELIVERED: monthly.SENT, delivery.FAILED: monthly.FAILED}.get(verdict.outcome, monthly.PENDING)
        return kind, attempts, verdict.message, verdict.retry_at
