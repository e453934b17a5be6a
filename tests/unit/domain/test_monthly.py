"""The monthly report's schedule and record (domain/monthly.py): due on the first of the month in the
policy's time zone, recorded before it is sent, sent once per month and channel under one key whatever
moment a crash takes the operator."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incidentops.api.policy import EscalationPolicy, ReportSendState
from incidentops.domain import monthly

UTC = datetime.UTC


def policy(status: dict[str, Any] | None = None, **spec: Any) -> EscalationPolicy:
    return EscalationPolicy.model_validate(
        {
            "metadata": {
                "name": "paging",
                "namespace": "team",
                "uid": "u-1",
                "creationTimestamp": "2026-10-05T00:00:00Z",
            },
            "spec": {
                "channels": [
                    {"name": "hook", "webhook": {"url": "https://hooks.example/x"}},
                    {
                        "name": "mail",
                        "email": {"to": ["a@example.com"], "from": "o@example.com", "smtp": {"host": "m"}},
                    },
                ],
                "reports": {"monthly": {"notify": ["hook", "mail"]}},
                **spec,
            },
            "status": status or {},
        }
    )


def with_status(p: EscalationPolicy, step: monthly.Step) -> EscalationPolicy:
    reports = monthly.with_monthly(p.status.reports, step.status)
    return p.model_copy(update={"status": p.status.model_copy(update={"reports": reports})})


def with_record(p: EscalationPolicy, record: Any) -> EscalationPolicy:
    reports = monthly.with_monthly(p.status.reports, record)
    return p.model_copy(update={"status": p.status.model_copy(update={"reports": reports})})


DUE = datetime.datetime(2026, 12, 1, tzinfo=UTC)


def test_nothing_is_due_before_the_first_of_the_month_and_the_wake_is_then() -> None:
    p = policy()
    before = DUE - datetime.timedelta(seconds=1)
    assert monthly.step(p, before - datetime.timedelta(days=3)) is not None  # November's 1st: October's report
    done = with_record(p, monthly.step(p, before).status.model_copy(update={"last_sent": "2026-10"}))  # type: ignore[union-attr]
    assert monthly.step(done, before) is None
    assert monthly.next_wake(done, before) == DUE


def test_the_due_step_records_the_previous_month_with_a_key_per_channel() -> None:
    step = monthly.step(policy(), DUE + datetime.timedelta(seconds=3))
    assert step is not None
    assert step.period.label == "2026-11"
    assert step.status.state is ReportSendState.SENDING and step.status.period == "2026-11"
    keys = {c.name: c.key for c in step.pending}
    assert set(keys) == {"hook", "mail"} and len(set(keys.values())) == 2
    assert keys["hook"] == monthly.key("u-1", "2026-11", "hook")


def test_in_the_policy_time_zone_at_the_start_of_the_business_day() -> None:
    p = policy(businessHours={"timeZone": "America/New_York", "start": "08:30", "end": "17:00"})
    due = datetime.datetime(2026, 12, 1, 13, 30, tzinfo=UTC)  # 08:30 EST
    assert monthly.step(p.model_copy(deep=True), due - datetime.timedelta(seconds=1)).period.label == "2026-10"  # type: ignore[union-attr]
    step = monthly.step(p, due)
    assert step is not None and step.period.label == "2026-11"
    assert step.period.start == datetime.datetime(2026, 11, 1, 4, tzinfo=UTC)  # midnight EDT


def test_a_policy_created_after_the_due_time_waits_for_next_month() -> None:
    p = policy()
    late = p.model_copy(
        update={"metadata": p.metadata.model_copy(update={"creation_timestamp": DUE + datetime.timedelta(hours=5)})}
    )
    assert monthly.step(late, DUE + datetime.timedelta(hours=6)) is None
    assert monthly.next_wake(late, DUE + datetime.timedelta(hours=6)) == datetime.datetime(2027, 1, 1, tzinfo=UTC)


def test_without_reports_nothing_is_ever_due() -> None:
    p = policy()
    bare = p.model_copy(update={"spec": p.spec.model_copy(update={"reports": None})})
    assert monthly.step(bare, DUE) is None and monthly.next_wake(bare, DUE) is None


def test_a_transient_failure_stays_pending_and_a_final_outcome_finishes_the_month() -> None:
    now = DUE + datetime.timedelta(seconds=1)
    p = policy()
    step = monthly.step(p, now)
    assert step is not None
    p = with_status(p, step)
    p = with_record(p, monthly.record(p.status.reports.monthly, "hook", "Pending", 1, "HTTP 503", now))  # type: ignore[union-attr]
    again = monthly.step(p, now)
    assert again is not None and [c.name for c in again.pending] == ["hook", "mail"]
    assert again.pending[0].attempts == 1 and again.pending[0].key == step.pending[0].key
    p = with_record(p, monthly.record(p.status.reports.monthly, "hook", "Sent", 2, "HTTP 200", now))  # type: ignore[union-attr]
    p = with_record(p, monthly.record(p.status.reports.monthly, "mail", "Failed", 1, "SMTP 550", now))  # type: ignore[union-attr]
    record = p.status.reports.monthly  # type: ignore[union-attr]
    assert record is not None and record.state is ReportSendState.SENT and record.last_sent == "2026-11"
    assert monthly.step(p, now) is None
    assert monthly.next_wake(p, now) == datetime.datetime(2027, 1, 1, tzinfo=UTC)


@given(crash=st.integers(min_value=0, max_value=6), crashes=st.integers(min_value=0, max_value=3))
def test_a_crash_at_any_moment_neither_skips_the_month_nor_sends_it_under_a_second_key(
    crash: int, crashes: int
) -> None:
    """The handler's protocol, step by step: record (1), then per channel send (2) and record (3). A crash
    after ``crash`` steps, ``crashes`` times, then a run to the end."""
    stored = policy()
    received: list[tuple[str, str]] = []  # (channel, key) as the receivers saw them
    now = DUE + datetime.timedelta(seconds=2)

    def run(limit: int | None) -> None:
        nonlocal stored
        done = 0

        def tick() -> bool:
            nonlocal done
            done += 1
            return limit is not None and done > limit

        step = monthly.step(stored, now)
        if step is None or tick():
            return
        stored = with_status(stored, step)
        for channel in step.pending:
            if tick():
                return
            received.append((channel.name, channel.key))
            if tick():
                return
            stored = with_record(
                stored, monthly.record(stored.status.reports.monthly, channel.name, "Sent", 1, "ok", now)
            )  # type: ignore[union-attr]

    for _ in range(crashes):
        run(crash)
    run(None)
    run(None)  # and once more after the month is done: nothing
    record = stored.status.reports.monthly
    assert record is not None and record.last_sent == "2026-11" and record.state is ReportSendState.SENT
    assert {name for name, _ in received} == {"hook", "mail"}  # never skipped
    keys: dict[str, set[str]] = {}
    for name, key in received:
        keys.setdefault(name, set()).add(key)
    assert all(len(k) == 1 for k in keys.values())  # every copy under one key
