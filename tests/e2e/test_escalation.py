"""Escalation end to end: the real operator pages real receivers level by level.

Delays are seconds, so the whole chain runs in under a minute; timing is
asserted by order and loose bounds (never earlier than a level's delay), the
latency itself belongs to the benchmark.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import eventually, get_json
from tests.e2e.receivers import Receivers

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, as PagerDuty's are
SLACK_TOKEN = "T0SECRET/B0SECRET/SLACKHOOKSECRETVALUE"
HMAC_SECRET = "hmac-secret-value-never-logged"
SECRETS = (ROUTING_KEY, SLACK_TOKEN, HMAC_SECRET)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def channel_secret(namespace: str, receivers: Receivers) -> dict[str, Any]:
    """The Secret the `paging` policy's channels read."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "channels", "namespace": namespace, "labels": {"incidentops.dev/channel-secret": "true"}},
        "data": {
            "routing-key": _b64(ROUTING_KEY),
            "slack-url": _b64(f"{receivers.base_url}/slack/{SLACK_TOKEN}"),
            "hmac": _b64(HMAC_SECRET),
        },
    }


def install_policy(
    cluster: controlplane.ControlPlane,
    namespace: str,
    receivers: Receivers,
    *,
    levels: list[dict[str, Any]],
    repeat: dict[str, Any] | None = None,
    name: str = "paging",
    extra_channels: list[dict[str, Any]] | None = None,
    **extra_spec: Any,
) -> None:
    secret = channel_secret(namespace, receivers)
    spec: dict[str, Any] = {
        "levels": levels,
        "channels": [
            {
                "name": "hook",
                "webhook": {
                    "url": f"{receivers.base_url}/webhook/hook",
                    "hmacSecretRef": {"name": "channels", "key": "hmac"},
                },
            },
            {"name": "chat", "slack": {"webhookSecretRef": {"name": "channels", "key": "slack-url"}}},
            {
                "name": "pager",
                "pagerduty": {
                    "routingKeySecretRef": {"name": "channels", "key": "routing-key"},
                    "url": f"{receivers.base_url}/pagerduty/v2/enqueue",
                },
            },
            {
                "name": "mail",
                "email": {
                    "to": ["lead@example.com"],
                    "from": "incidentops@example.com",
                    "smtp": {"host": "127.0.0.1", "port": receivers.smtp_port, "starttls": False},
                },
            },
            *(extra_channels or []),
        ],
    }
    if repeat:
        spec["repeat"] = repeat
    spec.update(extra_spec)
    policy = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    cluster.apply([secret, policy])


def declare(cluster: controlplane.ControlPlane, namespace: str, name: str, **spec: Any) -> float:
    """Create an incident under the `paging` policy; returns its creation time (epoch seconds)."""
    body = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"title": f"{name} is failing", "escalationPolicyRef": {"name": "paging"}, **spec},
    }
    cluster.apply(body)
    created = get_json(cluster, "incident", name, "-n", namespace)["metadata"]["creationTimestamp"]
    return datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


def webhook_events(receivers: Receivers, incident: str) -> list[tuple[str, str | None, float]]:
    return [
        (d.body["event"], d.body.get("levelName"), d.at)
        for d in receivers.of("webhook")
        if isinstance(d.body, dict) and d.body.get("incident", {}).get("name") == incident
    ]


def wait_event(receivers: Receivers, incident: str, event: str, level: str | None = None, timeout: float = 40) -> float:
    def found() -> float | None:
        for ev, lvl, at in webhook_events(receivers, incident):
            if ev == event and (level is None or lvl == level):
                return at
        return None

    return float(eventually(f"{event} {level or ''} of {incident}", found, timeout=timeout))


def plugin(cluster: controlplane.ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kubectl-incident")
    return subprocess.run(
        [str(exe), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )


def scrape(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    """The operator's metrics as {(name, labels): value}, read as Prometheus would."""
    text = urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
    samples: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        samples[(name, labels.rstrip("}"))] = float(value)
    return samples


def assert_clean(receivers: Receivers, incident: str, operator: OperatorProcess) -> None:
    """Every payload had its API's shape; no key delivered twice; no secret leaked anywhere we write."""
    mine = [d for d in receivers.of() if incident in json.dumps(d.body) or incident in json.dumps(d.headers)]
    problems = [(d.kind, d.problems) for d in mine if d.problems]
    assert not problems, problems
    keys = receivers.keys("webhook", incident=incident)
    assert len(keys) == len(set(keys)), f"a webhook key was delivered twice: {keys}"
    log = operator.output()
    for secret in SECRETS:
        assert secret not in log


def test_p1_chain_ack_stakeholder_and_resolve(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["hook", "chat", "pager"]},
            {"name": "team-lead", "after": "6s", "notify": ["hook", "mail"]},
            {"name": "cto", "afterBySeverity": {"P1": "14s"}, "until": "resolved", "notify": ["hook"]},
        ],
    )
    t0 = declare(cluster, namespace, "checkout-down", severity="P1")

    first = wait_event(receivers, "checkout-down", "triggered", "on-call")
    assert first >= t0 - 1
    eventually("the on-call Slack message", lambda: receivers.of("slack", incident="checkout-down"))
    trigger = eventually("the PagerDuty trigger", lambda: receivers.of("pagerduty", incident="checkout-down"))[0]
    assert trigger.body["event_action"] == "trigger" and trigger.body["payload"]["severity"] == "critical"

    lead = wait_event(receivers, "checkout-down", "escalated", "team-lead")
    assert lead >= t0 + 6 - 1, "a level never fires before its delay"
    assert lead < t0 + 6 + 15, "and not much later either (loose bound; latency is benchmarked)"
    mail = eventually("the team lead's mail", lambda: receivers.of("email"))
    assert "checkout-down" in mail[0].headers["Subject"] or "checkout" in mail[0].headers["Subject"]

    acked = plugin(cluster, "ack", "checkout-down", "-n", namespace, "--note", "looking")
    assert acked.returncode == 0, acked.stderr
    wait_event(receivers, "checkout-down", "acknowledged")
    eventually(
        "the PagerDuty acknowledge",
        lambda: [d for d in receivers.of("pagerduty") if d.body.get("event_action") == "acknowledge"],
    )

    # The stakeholder level is `until: resolved`: it still fires after the acknowledgement.
    cto = wait_event(receivers, "checkout-down", "escalated", "cto")
    assert cto >= t0 + 14 - 1

    resolved = plugin(
        cluster, "resolve", "checkout-down", "-n", namespace, "--summary", "rolled back", "--root-cause", "bad deploy"
    )
    assert resolved.returncode == 0, resolved.stderr
    wait_event(receivers, "checkout-down", "resolved")
    eventually(
        "the PagerDuty resolve",
        lambda: [d for d in receivers.of("pagerduty") if d.body.get("event_action") == "resolve"],
    )

    events = webhook_events(receivers, "checkout-down")
    order = [(e, lvl) for e, lvl, _ in events]
    assert (
        order.index(("triggered", "on-call"))
        < order.index(("escalated", "team-lead"))
        < order.index(("escalated", "cto"))
    )
    obj = get_json(cluster, "incident", "checkout-down", "-n", namespace)
    assert obj["status"]["phase"] == "Resolved"
    assert obj["status"]["metrics"]["timeToAcknowledgeSeconds"] >= 0
    assert_clean(receivers, "checkout-down", operator)

    metrics = scrape(operator)
    hook_pages = len([e for e in events if e[0] in ("triggered", "escalated")])
    assert (
        metrics[("incidentops_notifications_total", 'channel_type="webhook",event="escalated",outcome="Delivered"')]
        >= 2
    )
    assert metrics[("incidentops_escalations_total", 'level="team-lead"')] == 1
    assert metrics[("incidentops_time_to_acknowledge_seconds_count", 'severity="P1"')] == 1
    assert hook_pages == 3


def test_containment_counts_as_acknowledgement(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    """Someone who contained the incident is working on it: paging stops, PagerDuty is told, the Acked-By
    column names them."""
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["hook", "pager"]},
            {"name": "team-lead", "after": "20s", "notify": ["hook"]},
        ],
    )
    declare(cluster, namespace, "cart-slow", severity="P2")
    wait_event(receivers, "cart-slow", "triggered", "on-call")
    contained = plugin(cluster, "contain", "cart-slow", "-n", namespace, "--note", "rolled back")
    assert contained.returncode == 0, contained.stderr
    wait_event(receivers, "cart-slow", "acknowledged")
    uid = get_json(cluster, "incident", "cart-slow", "-n", namespace)["metadata"]["uid"]
    eventually(
        "the PagerDuty acknowledge (its dedup key names the incident's uid)",
        lambda: [
            d
            for d in receivers.of("pagerduty")
            if d.body.get("event_action") == "acknowledge" and uid in d.body.get("dedup_key", "")
        ],
    )
    obj = eventually(
        "no more pages planned",
        lambda: (
            (o := get_json(cluster, "incident", "cart-slow", "-n", namespace))
            and o["status"].get("acknowledgedBy")
            and o["status"]["escalation"].get("nextAt") is None
            and o
        ),
    )
    ack = next(c for c in obj["status"]["conditions"] if c["type"] == "Acknowledged")
    assert (ack["status"], ack["reason"]) == ("True", "AcknowledgedByContainment")
    assert obj["status"]["phase"] == "Contained"
    assert "acknowledgement" not in obj["spec"]
    row = cluster.kubectl("get", "incident", "cart-slow", "-n", namespace, "--no-headers").stdout.split()
    assert row[4] == obj["status"]["acknowledgedBy"], row  # NAME SEVERITY PHASE LEVEL ACKED-BY AGE
    assert obj["status"]["metrics"]["timeToAcknowledgeSeconds"] == obj["status"]["metrics"]["timeToContainSeconds"]
    assert all(level != "team-lead" for _, level, _ in webhook_events(receivers, "cart-slow"))
    assert_clean(receivers, "cart-slow", operator)


def test_p3_follows_p3_delays(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "afterBySeverity": {"P1": "0s", "P3": "5s"}, "notify": ["hook"]},
            {"name": "p1-only", "afterBySeverity": {"P1": "1s"}, "notify": ["hook"]},
        ],
    )
    t0 = declare(cluster, namespace, "slow-page", severity="P3")
    first = wait_event(receivers, "slow-page", "triggered", "on-call")
    assert first >= t0 + 5 - 1
    assert all(lvl != "p1-only" for _, lvl, _ in webhook_events(receivers, "slow-page"))


def test_repeat_round_repages_while_nobody_acknowledges(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        repeat={"times": 2, "every": "5s"},
        # The last page (at 10s) gets the 3s anyone gets to acknowledge, and the round runs until 15s.
        severities={"P2": {"acknowledgeWithin": "3s"}},
    )
    declare(cluster, namespace, "flapping", severity="P2")
    eventually(
        "three pages of the on-call level (the first and two repeats)",
        lambda: len([e for e in webhook_events(receivers, "flapping") if e[1] == "on-call"]) >= 3,
        timeout=40,
    )
    obj = eventually(
        "EscalationExhausted",
        lambda: (
            (o := get_json(cluster, "incident", "flapping", "-n", namespace))
            and any(c["type"] == "EscalationExhausted" and c["status"] == "True" for c in o["status"]["conditions"])
            and o
        ),
        timeout=30,
    )
    assert obj["status"]["escalation"]["exhausted"] is True
    assert_clean(receivers, "flapping", operator)


def test_drill_messages_say_drill(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook", "chat", "pager", "mail"]}],
    )
    declare(cluster, namespace, "gameday", severity="P2", drill=True)
    wait_event(receivers, "gameday", "triggered")

    def gameday_mails() -> list:
        return [d for d in receivers.of("email") if "gameday" in json.dumps(d.headers)]

    eventually("all four channels", lambda: gameday_mails() and receivers.of("slack", incident="gameday"))
    hook = [d for d in receivers.of("webhook") if d.body.get("incident", {}).get("name") == "gameday"]
    assert all(d.body["drill"] is True and "DRILL" in d.body["message"] for d in hook)
    assert all("DRILL" in d.body["text"] for d in receivers.of("slack", incident="gameday"))
    assert all("DRILL" in d.body["payload"]["summary"] for d in receivers.of("pagerduty", incident="gameday"))
    mails = gameday_mails()
    assert mails and all("DRILL" in d.headers["Subject"] for d in mails)


def test_sigkill_between_levels_loses_and_duplicates_nothing(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["hook"]},
            {"name": "second", "after": "8s", "notify": ["hook"]},
            {"name": "third", "after": "12s", "notify": ["hook"]},
        ],
    )
    declare(cluster, namespace, "crashy", severity="P1")
    wait_event(receivers, "crashy", "triggered", "on-call")
    operator.kill()  # SIGKILL: no goodbye, no flush
    operator.start()
    wait_event(receivers, "crashy", "escalated", "second")
    wait_event(receivers, "crashy", "escalated", "third")
    pages = [
        (d.body["levelName"], d.headers["Idempotency-Key"])
        for d in receivers.of("webhook")
        if d.body.get("incident", {}).get("name") == "crashy" and d.body["event"] in ("triggered", "escalated")
    ]
    # At least once with a stable key: a page sent just before the kill may come again,
    # but only under the same key; no level is skipped, none sent under two keys.
    levels = list(dict.fromkeys(level for level, _ in pages))
    assert levels == ["on-call", "second", "third"], pages
    for level in levels:
        assert len({key for lvl, key in pages if lvl == level}) == 1, pages
    keys = [key for _, key in pages]
    status = get_json(cluster, "incident", "crashy", "-n", namespace)["status"]
    recorded = {n["key"] for n in status["notifications"]}
    assert set(keys) <= recorded, "every delivered key is recorded in status"


def test_a_channel_secret_created_late_still_gets_the_page_out_and_escalation_goes_on(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["chat"]},
            {"name": "team-lead", "after": "4s", "notify": ["mail"]},
        ],
    )
    cluster.kubectl("delete", "secret", "channels", "-n", namespace)
    declare(cluster, namespace, "no-secret", severity="P2")

    def chat_record() -> dict[str, Any] | None:
        status = get_json(cluster, "incident", "no-secret", "-n", namespace).get("status") or {}
        return next((n for n in status.get("notifications", []) if n["channel"] == "chat"), None)

    pending = eventually("the Slack page waiting for its Secret", chat_record)
    assert pending["outcome"] == "Pending", "a Secret not there yet is retried, not the page given up"
    assert "channels" in pending["message"] and "not found" in pending["message"]

    def policy_ready() -> dict[str, Any] | None:
        status = get_json(cluster, "escalationpolicy", "paging", "-n", namespace).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    ready = eventually("the policy saying why", lambda: (c := policy_ready()) and c["status"] == "False" and c)
    assert ready["reason"] == "SecretNotFound"
    eventually(
        "the next level's mail although the first channel waits",
        lambda: [d for d in receivers.of("email") if "no-secret" in json.dumps(d.headers)],
    )
    assert not receivers.of("slack", incident="no-secret")

    cluster.apply(channel_secret(namespace, receivers))  # seconds late (a minute, in life)
    (page,) = eventually("the page, once the Secret exists", lambda: receivers.of("slack", incident="no-secret"))
    sent = eventually("recorded Sent", lambda: (r := chat_record()) and r["outcome"] == "Sent" and r)
    assert sent["key"] == pending["key"] and sent["key"] in json.dumps(page.body), "under the key it always had"
    assert sent["attempts"] > 1
    eventually("the policy Ready again", lambda: (c := policy_ready()) and c["status"] == "True")


def test_policy_edit_takes_effect_at_the_next_wake_up_without_resending(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    levels = [
        {"name": "on-call", "after": "0s", "notify": ["hook"]},
        {"name": "team-lead", "after": "10m", "notify": ["hook"]},
    ]
    install_policy(cluster, namespace, receivers, levels=levels)
    t0 = declare(cluster, namespace, "edited", severity="P2")
    wait_event(receivers, "edited", "triggered", "on-call")

    levels[1]["after"] = "5s"  # the team lead is now due 5s after the start, not 10 minutes
    install_policy(cluster, namespace, receivers, levels=levels)
    lead = wait_event(receivers, "edited", "escalated", "team-lead", timeout=40)
    assert lead >= t0 + 5 - 1
    on_call = [k for e, lvl, _ in webhook_events(receivers, "edited") if lvl == "on-call" for k in [e]]
    assert on_call == ["triggered"], "the edit re-sent nothing"
