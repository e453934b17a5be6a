"""After an attempt: delivered, retried (when), given up; moot-ness; what is recorded and announced."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops.api import reasons
from incidentops.api.incident import NotificationOutcome
from incidentops.domain import delivery
from incidentops.domain.delivery import Attempted, RetryRules
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, at, incident, level, mark, policy, with_spec, with_status

RULES = RetryRules(initial_delay=1, multiplier=2, max_delay=60, jitter=0.2, max_age=datetime.timedelta(hours=1))
DOWN = Attempted(False, "HTTP 503: try again", retryable=True)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [delivery.backoff(RULES, n, None, 0.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert delivery.backoff(RULES, 3, None, 1.0) == pytest.approx(4.8)
    assert delivery.backoff(RULES, 3, None, -1.0) == pytest.approx(3.2)


def test_retry_after_is_honoured_as_asked_within_bounds() -> None:
    assert delivery.backoff(RULES, 1, 7.0, 1.0) == 7.0, "no jitter on a server's wish"
    assert delivery.backoff(RULES, 1, 0.0, 0.0) == 1.0, "never a tight loop"
    assert delivery.backoff(RULES, 1, 86400.0, 0.0) == RULES.max_retry_after


@given(
    attempts=st.integers(min_value=1, max_value=500),
    retry_after=st.none() | st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    jitter=st.floats(min_value=-5, max_value=5, allow_nan=False),
)
def test_backoff_stays_within_its_bounds(attempts: int, retry_after: float | None, jitter: float) -> None:
    delay = delivery.backoff(RULES, attempts, retry_after, jitter)
    assert 0 <= delay <= max(RULES.max_retry_after, RULES.max_delay * (1 + RULES.jitter))


def test_delivered_and_refused_are_final() -> None:
    sent = delivery.after_attempt(RULES, Attempted(True, "HTTP 200"), attempts=3, due_at=at(0), now=at(1))
    assert (sent.outcome, sent.final, sent.retry_at) == ("Delivered", True, None)
    refused = delivery.after_attempt(
        RULES, Attempted(False, "HTTP 400: invalid (not retried)"), attempts=1, due_at=at(0), now=at(0)
    )
    assert (refused.outcome, refused.message) == ("Failed", "HTTP 400: invalid (not retried)")


def test_a_transient_failure_is_pending_until_its_retry() -> None:
    verdict = delivery.after_attempt(RULES, DOWN, attempts=3, due_at=at(0), now=at(1))
    assert (verdict.outcome, verdict.final, verdict.message) == ("Pending", False, "HTTP 503: try again")
    assert verdict.retry_at == at(1, seconds=4)


def test_it_gives_up_at_the_maximum_age_and_tries_once_more_at_it() -> None:
    late = delivery.after_attempt(RULES, DOWN, attempts=40, due_at=at(0), now=at(59, seconds=30))
    assert late.outcome == "Pending" and late.retry_at == at(60), "the last try is at the deadline, not after"
    gone = delivery.after_attempt(RULES, DOWN, attempts=41, due_at=at(0), now=at(60))
    assert gone.outcome == "Failed"
    assert gone.message == "HTTP 503: try again (gave up after 41 attempts in 1h)"


def _paged(**incident_args: object):  # type: ignore[no-untyped-def]
    p = policy(levels=[level("on-call", notify=["pager"])], repeat={"times": 2, "every": "30m"})
    inc = incident(**incident_args)  # type: ignore[arg-type]
    selection = select_policy(inc, [p], OPERATOR_NS)
    first = plan(inc, selection, at(0))
    return inc, selection, first


def test_a_notification_still_planned_is_not_moot() -> None:
    inc, selection, first = _paged()
    page = first.due[0]
    pending = delivery.record_outcomes(first.status, [(page, "Pending", 1, "HTTP 503")], at(0))
    again = plan(with_status(inc, pending), selection, at(5))
    assert delivery.moot(again, page, 1) is None


def test_an_acknowledged_page_is_moot() -> None:
    inc, selection, first = _paged()
    page = first.due[0]
    acked = with_spec(with_status(inc, first.status), acknowledgement=mark(2))
    gone = delivery.moot(plan(acked, selection, at(3)), page, 1)
    assert gone is not None and gone.reason == "the incident was acknowledged" and not gone.recorded


def test_a_resolved_one_is_moot() -> None:
    inc, selection, first = _paged()
    resolved = with_spec(with_status(inc, first.status), resolution=mark(2))
    gone = delivery.moot(plan(resolved, selection, at(3)), first.due[0], 1)
    assert gone is not None and gone.reason == "the incident is resolved"


def test_a_page_of_a_past_round_is_moot() -> None:
    inc, selection, first = _paged()
    later = plan(with_status(inc, first.status), selection, at(31))
    gone = delivery.moot(later, first.due[0], 1)
    assert gone is not None and gone.reason == "round 2 started"


def test_a_recorded_one_is_moot_with_nothing_to_write() -> None:
    inc, selection, first = _paged()
    page = first.due[0]
    sent = delivery.record_outcomes(first.status, [(page, "Delivered", 1, "")], at(0))
    gone = delivery.moot(plan(with_status(inc, sent), selection, at(1)), page, 1)
    assert gone is not None and gone.recorded


def test_a_moot_one_is_recorded_skipped_and_its_channel_not_reached() -> None:
    inc, selection, first = _paged()
    page = first.due[0]
    pending = delivery.record_outcomes(first.status, [(page, "Pending", 1, "HTTP 503")], at(0))
    acked = with_spec(with_status(inc, pending), acknowledgement=mark(2))
    gone = delivery.moot(plan(acked, selection, at(3)), page, 1)
    assert gone is not None
    skipped = delivery.record_outcomes(pending, [(page, "Skipped", 1, f"moot: {gone.reason}")], at(3))
    (record,) = [r for r in skipped.notifications if r.key == page.key]
    assert (record.outcome, record.message) == (NotificationOutcome.SKIPPED, "moot: the incident was acknowledged")
    assert skipped.escalation is not None and page.key not in skipped.escalation.notified
    after = plan(with_spec(with_status(inc, skipped), acknowledgement=mark(2)), selection, at(4))
    assert after.due == (), "the pager never got the page: it is not told of the acknowledgement"
    again = delivery.moot(after, page, 1)
    assert again is not None and again.recorded


def test_pending_then_sent_is_recorded_once_in_the_timeline() -> None:
    _, _, first = _paged()
    page = first.due[0]
    before = len(first.status.timeline)
    once = delivery.record_outcomes(first.status, [(page, "Pending", 1, "HTTP 503")], at(0))
    assert delivery.attempts_so_far(once, page.key) == 1
    assert [e.kind for e in once.timeline[before:]] == [reasons.NOTIFICATION_FAILED]
    assert "pager not delivered yet (HTTP 503); retrying" in once.timeline[-1].message
    assert once.escalation is not None and page.key not in once.escalation.notified
    twice = delivery.record_outcomes(once, [(page, "Pending", 5, "timed out after 10s")], at(1))
    assert len(twice.timeline) == len(once.timeline), "a retry is not history"
    record = next(r for r in twice.notifications if r.key == page.key)
    assert (record.outcome, record.attempts, record.message) == (NotificationOutcome.PENDING, 5, "timed out after 10s")
    sent = delivery.record_outcomes(twice, [(page, "Delivered", 6, "HTTP 200 after 6 attempts")], at(2))
    assert sent.escalation is not None and page.key in sent.escalation.notified
    assert [e.kind for e in sent.timeline[before:]] == [reasons.NOTIFICATION_FAILED, reasons.NOTIFICATION_SENT]
    assert delivery.attempts_so_far(sent, page.key) == 0


def test_a_failing_notification_is_announced_once() -> None:
    _, _, first = _paged()
    page = first.due[0]
    pending = [(page, "Pending", 1, "HTTP 503")]
    (notice,) = delivery.failure_notices(first.status, pending)
    assert (notice.type, notice.reason) == ("Warning", reasons.NOTIFICATION_FAILED)
    assert notice.message == "triggered (on-call) to channel pager failed: HTTP 503; retrying"
    once = delivery.record_outcomes(first.status, pending, at(0))
    assert delivery.failure_notices(once, [(page, "Pending", 2, "HTTP 503")]) == ()
    assert delivery.failure_notices(once, [(page, "Failed", 9, "gave up")]) == (), "not again when it gives up"
    (refused,) = delivery.failure_notices(first.status, [(page, "Failed", 1, "HTTP 400 (not retried)")])
    assert refused.message == "triggered (on-call) to channel pager failed: HTTP 400 (not retried)"
    assert delivery.failure_notices(first.status, [(page, "Delivered", 1, "")]) == ()
