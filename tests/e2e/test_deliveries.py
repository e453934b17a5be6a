"""Deliveries end to end: never in the way, retried under one key, honest about failure.

The real operator, the real control plane, and the real peers of
``receivers.py`` made to misbehave as real services do: a webhook that accepts
and never answers, one that answers 503 and then 200, one that refuses with a
400, a PagerDuty that answers 429 with ``Retry-After``. Timing is asserted by
order (the incident's state is visible while the dead channel's delivery is
still being attempted) and by loose bounds; latency belongs to the benchmarks.
"""

from __future__ import annotations

import time
from typing import Any

from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import eventually, get_json
from tests.e2e.receivers import Receivers, Reply
from tests.e2e.test_escalation import declare, install_policy, plugin, scrape, webhook_events

# The incident's state must be visible within a second of its cause; the bound here is loose
# (kubectl and the plugin are processes of their own on a shared machine) but far below the
# 10 s an attempt to a dead channel takes before it times out.
STATE_WITHIN = 3.0


def hook(name: str, receivers: Receivers, namespace: str) -> dict[str, Any]:
    """A webhook channel of its own path, so a test can script it without touching the others."""
    return {"name": name, "webhook": {"url": f"{receivers.base_url}/webhook/{name}-{namespace}"}}


def records(cluster: controlplane.ControlPlane, namespace: str, incident: str) -> dict[str, dict[str, Any]]:
    status = get_json(cluster, "incident", incident, "-n", namespace).get("status") or {}
    return {n["channel"]: n for n in status.get("notifications", [])}


def phase(cluster: controlplane.ControlPlane, namespace: str, incident: str) -> str | None:
    return (get_json(cluster, "incident", incident, "-n", namespace).get("status") or {}).get("phase")


def policy_ready(cluster: controlplane.ControlPlane, namespace: str) -> dict[str, Any]:
    status = get_json(cluster, "escalationpolicy", "paging", "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def warnings(cluster: controlplane.ControlPlane, namespace: str, incident: str, reason: str) -> list[dict[str, Any]]:
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={incident}")
    return [e for e in events["items"] if e["reason"] == reason]


def test_a_dead_channel_does_not_delay_acknowledgement_or_resolution(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    dead = f"/webhook/dead-{namespace}"
    receivers.script(dead, *[Reply(hang=True)] * 10)  # accepts, never answers
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook", "dead"]}],
        extra_channels=[hook("dead", receivers, namespace)],
    )
    declare(cluster, namespace, "stuck", severity="P1")
    eventually("the live channel's page", lambda: webhook_events(receivers, "stuck"))
    eventually("the dead channel being attempted", lambda: receivers.of(refused=True, incident="stuck"))

    for verb, args, state in (("ack", (), "Acknowledged"), ("resolve", ("--summary", "fixed"), "Resolved")):
        done = plugin(cluster, verb, "stuck", "-n", namespace, *args)
        assert done.returncode == 0, done.stderr
        returned = time.monotonic()
        eventually(state, lambda s=state: phase(cluster, namespace, "stuck") == s, interval=0.1)
        assert time.monotonic() - returned < STATE_WITHIN
        dead_record = records(cluster, namespace, "stuck").get("dead")
        assert dead_record is None or dead_record["outcome"] == "Pending", "seen while the dead page is attempted"

    # Once its attempt times out, the dead page is moot (acknowledged): recorded Skipped, not retried.
    skipped = eventually(
        "the dead page recorded moot",
        lambda: (r := records(cluster, namespace, "stuck").get("dead")) and r["outcome"] == "Skipped" and r,
        timeout=40,
    )
    assert skipped["message"].startswith("moot: ")
    assert [e for e, _, _ in webhook_events(receivers, "stuck")] == ["triggered", "acknowledged", "resolved"]


def test_503_then_200_delivers_the_page_once_with_attempts(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    receivers.script(f"/webhook/flaky-{namespace}", Reply(503), Reply(503))
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["flaky"]}],
        extra_channels=[hook("flaky", receivers, namespace)],
    )
    declare(cluster, namespace, "flaky", severity="P2")
    sent = eventually(
        "the page recorded Sent",
        lambda: (r := records(cluster, namespace, "flaky").get("flaky")) and r["outcome"] == "Sent" and r,
    )
    assert sent["attempts"] == 3
    delivered = receivers.keys("webhook", incident="flaky")
    assert delivered == [sent["key"]], "delivered once"
    refused = receivers.of("webhook", incident="flaky", refused=True)
    assert [d.headers["Idempotency-Key"] for d in refused] == [sent["key"]] * 2, "every attempt under the same key"
    assert len(warnings(cluster, namespace, "flaky", "NotificationFailed")) == 1, "announced once, not per retry"


def test_a_400_fails_at_once_and_is_never_retried(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    receivers.script(f"/webhook/refusing-{namespace}", Reply(400, "unknown hook"))
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["refusing"]},
            {"name": "team-lead", "after": "5s", "notify": ["hook"]},
        ],
        extra_channels=[hook("refusing", receivers, namespace)],
    )
    declare(cluster, namespace, "refused", severity="P2")
    failed = eventually(
        "the page recorded Failed",
        lambda: (r := records(cluster, namespace, "refused").get("refusing")) and r["outcome"] != "Pending" and r,
    )
    assert (failed["outcome"], failed["attempts"]) == ("Failed", 1)
    assert failed["message"] == "HTTP 400: unknown hook (not retried)"
    eventually("escalation going on", lambda: webhook_events(receivers, "refused"))  # the team lead, 5 s later
    assert len(receivers.of("webhook", incident="refused", refused=True)) == 1, "never retried"
    (event,) = warnings(cluster, namespace, "refused", "NotificationFailed")
    assert "unknown hook" in event["message"] and event["type"] == "Warning"


def test_a_channel_that_keeps_failing_turns_the_policy_not_ready_until_it_recovers(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    receivers.script(f"/webhook/sick-{namespace}", *[Reply(503, "maintenance")] * 6)
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["sick"]}],
        extra_channels=[hook("sick", receivers, namespace)],
    )
    eventually("the policy Ready", lambda: policy_ready(cluster, namespace).get("status") == "True")
    declare(cluster, namespace, "sick", severity="P1")

    failing = eventually(
        "Ready=False NotificationsFailing",
        lambda: (c := policy_ready(cluster, namespace)).get("reason") == "NotificationsFailing" and c,
    )
    assert failing["status"] == "False"
    assert (
        failing["message"].startswith("channel sick failing since ") and "HTTP 503: maintenance" in failing["message"]
    )
    (event,) = warnings(cluster, namespace, "sick", "NotificationFailed")
    assert "sick" in event["message"]
    assert records(cluster, namespace, "sick")["sick"]["outcome"] == "Pending"

    eventually(
        "Ready=True once it delivers", lambda: policy_ready(cluster, namespace).get("status") == "True", timeout=60
    )
    sent = records(cluster, namespace, "sick")["sick"]
    assert (sent["outcome"], sent["attempts"]) == ("Sent", 7)
    channels = get_json(cluster, "escalationpolicy", "paging", "-n", namespace)["status"]["channels"]
    assert [(c["name"], c["state"]) for c in channels] == [("sick", "Healthy")]
    assert len(warnings(cluster, namespace, "sick", "NotificationFailed")) == 1
    counts = scrape(operator)
    pending = ("incidentops_notifications_total", 'channel_type="webhook",event="triggered",outcome="Pending"')
    assert counts[pending] >= 6


def test_pagerduty_429_with_retry_after_is_honoured_and_nothing_is_lost(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    receivers.script("/pagerduty/v2/enqueue", Reply(429, "Too Many Requests", {"Retry-After": "3"}))
    install_policy(cluster, namespace, receivers, levels=[{"name": "on-call", "after": "0s", "notify": ["pager"]}])
    names = [f"burst-{i}" for i in range(3)]
    for name in names:
        declare(cluster, namespace, name, severity="P1")

    def triggers() -> list[Any]:
        return [d for d in receivers.of("pagerduty") if any(n in str(d.body) for n in names)]

    got = eventually("every trigger", lambda: len(triggers()) >= 3 and triggers())
    (throttled,) = [d for d in receivers.of("pagerduty", refused=True) if any(n in str(d.body) for n in names)]
    assert throttled.status == 429
    assert all(d.at >= throttled.at + 3 - 0.5 for d in got), "the destination waited as it was told"
    keys = [d.body["payload"]["custom_details"]["key"] for d in got]
    assert len(keys) == len(set(keys)) == 3, "none lost, none twice"
    for name in names:
        eventually(f"{name} recorded", lambda n=name: records(cluster, namespace, n)["pager"]["outcome"] == "Sent")
