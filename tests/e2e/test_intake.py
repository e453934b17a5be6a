"""Alert intake end to end: the real Alertmanager (and Prometheus) post to the real operator's receiver.

The operator runs as its own process under the chart's ServiceAccount, with
its receiver on a loopback port and bearer tokens from files; the incidents
land on the real API server. Alertmanager and Prometheus are Debian's
binaries, configured from ``examples/``. Each test works in a namespace of its
own: the operator may place a group's incident in the group's ``namespace``
label (INCIDENTOPS_ALERT_NAMESPACE_LABEL=true), and a policy there decides
severity, resolution and reopening.

Besides Alertmanager's own traffic, hypothesis makes a storm: groups whose
snapshots carry any labels and start times, with mutated near misses among
them, sent by 8 clients at once. Not one answer may be a 5xx, and every group
that fired must have its one incident, holding what its last POST said.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from incidentops.domain import alertgroups
from incidentops.intake.payload import PayloadError, parse
from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e import alertmanager as am
from tests.e2e.conftest import eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_plugin import run_script
from tests.unit.intake.payloads import (
    ZERO_TIME,
    alert,
    fingerprint,
    label_names,
    label_values,
    mutated_payloads,
    payload,
    starts_at_values,
)

TOKEN = "e2e-token-current"
PREVIOUS = "e2e-token-previous"
MAX_BODY = 4 * 1024 * 1024


# --- fixtures ---------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # as the kubelet swaps a Secret volume


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tokens")
    current, previous = base / "token", base / "previous"
    _write(current, TOKEN + "\n")
    _write(previous, PREVIOUS + "\n")
    return current, previous


def _receiving_operator(kubeconfig: Path, namespace: str, log: Path, tokens: tuple[Path, Path]) -> OperatorProcess:
    proc = OperatorProcess(
        kubeconfig,
        namespace,
        log,
        env={
            "INCIDENTOPS_TOKEN_FILE": str(tokens[0]),
            "INCIDENTOPS_PREVIOUS_TOKEN_FILE": str(tokens[1]),
            "INCIDENTOPS_ALERT_NAMESPACE_LABEL": "true",
            "INCIDENTOPS_RECEIVER_MAX_BODY_BYTES": str(MAX_BODY),
            "INCIDENTOPS_POLICY_RECHECK_SECONDS": "1",
        },
    )
    proc.start()
    health = proc.alerts_url.replace("/api/v1/alerts", "/healthz")
    eventually("the receiver to serve", lambda: _get_status(health) == 200, timeout=20)
    return proc


def _get_status(url: str) -> int | None:
    try:
        return am.http_json("GET", url, timeout=2)[0]
    except OSError:
        return None


@contextlib.contextmanager
def _running(proc: OperatorProcess) -> Iterator[OperatorProcess]:
    try:
        yield proc
    finally:
        code = proc.stop()
        output = proc.output()
        assert "Traceback" not in output, f"the operator logged a traceback (exit {code}):\n{output[-8000:]}"


@pytest.fixture(scope="module")
def receiver(
    crds: None,
    operator_kubeconfig: Path,
    operator_namespace: str,
    tokens: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with _running(_receiving_operator(operator_kubeconfig, operator_namespace, log, tokens)) as proc:
        yield proc


@pytest.fixture
def policy(cluster: controlplane.ControlPlane, namespace: str) -> dict[str, Any]:
    """A policy in the test's namespace: it classifies the alert-born incidents there (default rules)."""
    body = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": "alerts", "namespace": namespace},
        "spec": {
            "levels": [{"name": "on-call", "after": "1h", "notify": ["hook"]}],
            "channels": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/hook"}}],
            "alerts": {"autoResolve": True, "reopenWindow": "1h"},
        },
    }
    cluster.apply(body)
    return body


@pytest.fixture
def alertmanager(receiver: OperatorProcess, tokens: tuple[Path, Path], tmp_path: Path) -> Iterator[am.Alertmanager]:
    config = am.alertmanager_config([receiver.alerts_url], tokens[0])
    with am.run_alertmanager(tmp_path / "alertmanager", config) as instance:
        yield instance


# --- helpers ----------------------------------------------------------------------------------------


def incidents(cluster: controlplane.ControlPlane, namespace: str) -> list[dict[str, Any]]:
    items = get_json(cluster, "incidents", "-n", namespace, "-l", alertgroups.ALERT_GROUP_LABEL)["items"]
    return sorted(items, key=alertgroups.sequence_of)


def alerts_of(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("status") or {}).get("alerts") or {}


def condition(obj: dict[str, Any], type: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type), None)


def the_incident(cluster: controlplane.ControlPlane, namespace: str, what: str, check: Any) -> dict[str, Any]:
    """Poll until the namespace's one alert-born incident satisfies ``check``; more than one fails at once."""

    def probe() -> dict[str, Any] | None:
        found = incidents(cluster, namespace)
        assert len(found) <= 1, f"more than one incident: {[i['metadata']['name'] for i in found]}"
        return found[0] if found and check(found[0]) else None

    result: dict[str, Any] = eventually(what, probe, timeout=60)
    return result


def post(url: str, body: Any, *, token: str | None = TOKEN, content_type: str = "application/json") -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return am.http_json("POST", url, raw, headers=headers)


def checkout_alerts(namespace: str, *, ended: bool = False, count: int = 3) -> list[dict[str, Any]]:
    return [
        am.am_alert(
            {
                "alertname": "CheckoutErrors",
                "namespace": namespace,
                "severity": "warning",
                "service": "checkout",
                "pod": f"checkout-{i}",
            },
            annotations={"summary": "Checkout error rate above 1%", "description": "5xx on /pay"},
            ended=ended,
        )
        for i in range(count)
    ]


# --- tests ------------------------------------------------------------------------------------------


def test_alertmanager_groups_become_incidents_that_resolve_and_reopen(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    alertmanager: am.Alertmanager,
    namespace: str,
    policy: dict[str, Any],
) -> None:
    alertmanager.push(checkout_alerts(namespace))
    obj = the_incident(
        cluster, namespace, "an incident with 3 firing alerts", lambda o: alerts_of(o).get("firing") == 3
    )

    name = obj["metadata"]["name"]
    assert name.startswith("checkouterrors-") and len(name) <= 63
    spec = obj["spec"]
    assert spec["title"] == "Checkout error rate above 1%"
    assert spec["description"] == "5xx on /pay"
    assert spec["source"]["kind"] == "alertmanager"
    assert spec["source"]["receiver"] == "incidentops"
    assert 'alertname="CheckoutErrors"' in spec["source"]["groupKey"]
    assert f'namespace="{namespace}"' in spec["source"]["groupKey"]
    assert spec["source"]["labels"]["severity"] == "warning"
    assert sorted(t["name"] for t in spec["targets"]) == ["checkout-0", "checkout-1", "checkout-2"]
    assert "severity" not in spec, "severity is the policy's classification, in status"
    alerts = alerts_of(obj)
    assert alerts["resolved"] == 0 and alerts["truncated"] == 0 and len(alerts["sample"]) == 3
    # The operator classifies it with the policy of the namespace (severity warning -> P3).
    obj = the_incident(cluster, namespace, "classification", lambda o: (o.get("status") or {}).get("severity"))
    assert obj["status"]["severity"] == "P3"
    assert obj["status"]["escalationPolicy"] == f"{namespace}/alerts"

    # Ending the alerts resolves the incident: status.alerts first, then the Resolved condition.
    alertmanager.push(checkout_alerts(namespace, ended=True))
    obj = the_incident(
        cluster,
        namespace,
        "every alert resolved",
        lambda o: alerts_of(o).get("firing") == 0 and alerts_of(o).get("resolved") == 3,
    )
    obj = the_incident(
        cluster,
        namespace,
        "Resolved by the alerts",
        lambda o: (c := condition(o, "Resolved")) is not None and c["status"] == "True",
    )
    resolved = condition(obj, "Resolved")
    assert resolved is not None and resolved["reason"] == "AlertsResolved"
    assert obj["status"]["phase"] == "Resolved"
    assert "resolution" not in obj["spec"], "an alert resolution is recorded in status only"

    # The group fires again within the reopen window: the same incident, a new episode.
    alertmanager.push(checkout_alerts(namespace, count=2))
    obj = the_incident(
        cluster,
        namespace,
        "a new episode",
        lambda o: alerts_of(o).get("firing") == 2 and (o.get("status") or {}).get("episode") == 2,
    )
    assert obj["metadata"]["name"] == name
    assert obj["status"]["reopenCount"] == 1
    assert obj["status"]["phase"] == "Triggered"


def test_a_closed_incident_is_followed_by_a_new_one(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    alertmanager: am.Alertmanager,
    namespace: str,
    policy: dict[str, Any],
) -> None:
    policy["spec"]["alerts"]["reopenWindow"] = "1s"
    cluster.apply(policy)
    alertmanager.push(checkout_alerts(namespace))
    first = the_incident(cluster, namespace, "the first incident", lambda o: alerts_of(o).get("firing") == 3)
    alertmanager.push(checkout_alerts(namespace, ended=True))
    first = the_incident(
        cluster, namespace, "Closed after the reopen window", lambda o: (o.get("status") or {}).get("phase") == "Closed"
    )
    assert alerts_of(first)["firing"] == 0

    alertmanager.push(checkout_alerts(namespace))

    def two() -> list[dict[str, Any]] | None:
        found = incidents(cluster, namespace)
        return found if len(found) == 2 and alerts_of(found[1]).get("firing") == 3 else None

    old, new = eventually("a second incident for the group", two, timeout=60)
    assert old["metadata"]["name"] == first["metadata"]["name"]
    assert new["metadata"]["name"] == f"{first['metadata']['name']}-2"
    assert (
        new["metadata"]["labels"][alertgroups.ALERT_GROUP_LABEL]
        == first["metadata"]["labels"][alertgroups.ALERT_GROUP_LABEL]
    )
    identity = ("kind", "receiver", "groupKey", "labels")
    assert {k: new["spec"]["source"][k] for k in identity} == {k: first["spec"]["source"][k] for k in identity}
    assert new["spec"]["source"]["previous"] == first["metadata"]["name"]
    assert old["status"]["phase"] == "Closed", "the closed incident is left alone"
    assert alerts_of(old)["firing"] == 0


def _group(namespace: str, status: str = "firing") -> dict[str, Any]:
    """A P1 group (severity critical), as Alertmanager posts it (sent here directly, to choose the moment)."""
    labels = {"alertname": "PaymentsDown", "namespace": namespace, "severity": "critical"}
    return payload([alert(status, **labels)], group_labels={"alertname": "PaymentsDown", "namespace": namespace})


def test_a_p1_that_fires_again_after_its_reopen_window_pages_as_a_new_incident(
    cluster: controlplane.ControlPlane, receiver: OperatorProcess, namespace: str, policy: dict[str, Any]
) -> None:
    """A resolved P1 waits for its post-mortem (which keeps it from closing): its group firing again after
    the reopen window must not be absorbed by it, unseen."""
    policy["spec"]["alerts"]["reopenWindow"] = "3s"
    cluster.apply(policy)
    assert post(receiver.alerts_url, _group(namespace))[0] == 200
    first = the_incident(cluster, namespace, "a P1", lambda o: (o.get("status") or {}).get("severity") == "P1")
    assert post(receiver.alerts_url, _group(namespace, "resolved"))[0] == 200
    first = the_incident(
        cluster, namespace, "Resolved, with its window", lambda o: (o.get("status") or {}).get("reopenUntil")
    )
    assert first["status"]["phase"] == "Resolved"
    until = datetime.datetime.fromisoformat(first["status"]["reopenUntil"].replace("Z", "+00:00"))

    def window_over() -> bool:
        # The cluster's clock: a throwaway object's creation time (whole seconds, so a second's margin).
        now = cluster.kubectl(
            "create", "configmap", f"clock-{os.urandom(3).hex()}", "-n", namespace,
            "-o", "jsonpath={.metadata.creationTimestamp}",
        ).stdout  # fmt: skip
        return datetime.datetime.fromisoformat(now.replace("Z", "+00:00")) > until + datetime.timedelta(seconds=1)

    eventually("the reopen window to pass", window_over, timeout=30)
    status, answer = post(receiver.alerts_url, _group(namespace))
    assert status == 200 and answer["created"], answer

    def two() -> list[dict[str, Any]] | None:
        found = incidents(cluster, namespace)
        return found if len(found) == 2 and (found[1].get("status") or {}).get("severity") else None

    old, new = eventually("a new incident for the group", two, timeout=60)
    assert new["spec"]["source"]["previous"] == old["metadata"]["name"]
    assert new["status"]["episode"] == 1 and new["status"]["phase"] == "Triggered"
    old = get_json(cluster, "incident", old["metadata"]["name"], "-n", namespace)
    assert old["status"]["phase"] == "Resolved", "the old one still waits for its post-mortem"
    assert old["status"]["episode"] == 1, "and it was not reopened"
    described = run_script(cluster, "describe", new["metadata"]["name"], "-n", namespace)
    assert f"the group's earlier incident: {old['metadata']['name']}" in described.stdout


def test_a_resend_after_a_manual_resolution_reopens_nothing(
    cluster: controlplane.ControlPlane, receiver: OperatorProcess, namespace: str, policy: dict[str, Any]
) -> None:
    assert post(receiver.alerts_url, _group(namespace))[0] == 200
    obj = the_incident(cluster, namespace, "a P1", lambda o: (o.get("status") or {}).get("episode") == 1)
    name = obj["metadata"]["name"]
    resolution = {"spec": {"resolution": {"by": "alice", "at": obj["metadata"]["creationTimestamp"]}}}
    cluster.kubectl("patch", "incident", name, "-n", namespace, "--type=merge", "-p", json.dumps(resolution))
    the_incident(cluster, namespace, "Resolved by alice", lambda o: (o.get("status") or {}).get("phase") == "Resolved")
    # Alertmanager re-sends the group, which never stopped firing, at its repeat_interval.
    status, answer = post(receiver.alerts_url, _group(namespace))
    assert status == 200 and answer["written"], answer
    received = alerts_of(obj).get("lastReceivedAt")
    obj = the_incident(
        cluster, namespace, "the re-send recorded", lambda o: alerts_of(o).get("lastReceivedAt") != received
    )
    fired = alerts_of(obj).get("lastFiredAt")
    # Make sure the operator has looked at the incident since the re-send: a spec change after it (a new
    # generation) that the operator acknowledges in status.observedGeneration.
    update = {"spec": {"statusUpdate": {"by": "alice", "at": alerts_of(obj)["lastReceivedAt"], "message": "fixed"}}}
    cluster.kubectl("patch", "incident", name, "-n", namespace, "--type=merge", "-p", json.dumps(update))
    obj = the_incident(
        cluster,
        namespace,
        "the operator's look after the re-send",
        lambda o: (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"],
    )
    assert (obj["status"]["episode"], obj["status"]["phase"]) == (1, "Resolved")
    assert alerts_of(obj).get("lastFiredAt") == fired
    # A real transition reopens: the group resolves, then fires again.
    assert post(receiver.alerts_url, _group(namespace, "resolved"))[0] == 200
    assert post(receiver.alerts_url, _group(namespace))[0] == 200
    obj = the_incident(cluster, namespace, "episode 2", lambda o: (o.get("status") or {}).get("episode") == 2)
    assert obj["status"]["episodeStartedAt"] == alerts_of(obj)["lastFiredAt"]


def test_two_receivers_and_concurrent_posts_make_one_incident(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    operator_kubeconfig: Path,
    operator_namespace: str,
    tokens: tuple[Path, Path],
    namespace: str,
    policy: dict[str, Any],
    tmp_path: Path,
) -> None:
    second = _receiving_operator(operator_kubeconfig, operator_namespace, tmp_path / "second.log", tokens)
    with _running(second):
        # 1. Straight at both receivers: 40 concurrent POSTs of one new group, growing snapshots.
        urls = [receiver.alerts_url, second.alerts_url]
        group = {"alertname": "Storm", "namespace": namespace}
        bodies = [
            payload([alert(namespace=namespace, pod=f"p{j}") for j in range(1 + i % 5)], group_labels=group)
            for i in range(40)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda ib: post(urls[ib[0] % 2], ib[1]), enumerate(bodies)))
        assert [status for status, _ in answers] == [200] * 40, answers
        assert len({a["incident"]["name"] for _, a in answers}) == 1
        # (POSTs coalesced into the creating write share its answer, so more than one may say created.)
        assert any(a["created"] for _, a in answers)
        found = incidents(cluster, namespace)
        assert len(found) == 1
        assert found[0]["metadata"]["name"] == answers[0][1]["incident"]["name"]

        # 2. Alertmanager delivering each notification to both replicas at once.
        config = am.alertmanager_config(urls, tokens[0])
        with am.run_alertmanager(tmp_path / "alertmanager", config) as manager:
            manager.push(checkout_alerts(namespace))

            def checkout() -> list[dict[str, Any]] | None:
                mine = [
                    i
                    for i in incidents(cluster, namespace)
                    if i["spec"]["source"]["labels"]["alertname"] == "CheckoutErrors"
                ]
                assert len(mine) <= 1, [i["metadata"]["name"] for i in mine]
                return mine if mine and alerts_of(mine[0]).get("firing") == 3 else None

            eventually("one incident from two receivers", checkout, timeout=60)
            assert "Notify for alerts failed" not in manager.output()
        assert len(incidents(cluster, namespace)) == 2


def test_every_bad_input_gets_its_4xx_and_nothing_is_written(
    cluster: controlplane.ControlPlane, receiver: OperatorProcess, namespace: str
) -> None:
    url = receiver.alerts_url
    base = receiver.alerts_url.removesuffix("/api/v1/alerts")
    group = {"alertname": "Bad", "namespace": namespace}
    good = payload([alert(namespace=namespace)], group_labels=group)

    def variant(**changes: Any) -> dict[str, Any]:
        return {**json.loads(json.dumps(good)), **changes}

    no_fingerprint = variant()
    del no_fingerprint["alerts"][0]["fingerprint"]
    many_labels = variant()
    many_labels["alerts"][0]["labels"] |= {f"l{i}": "v" for i in range(200)}
    cases: list[tuple[str, int, tuple[int, Any]]] = [
        ("malformed JSON", 400, post(url, b'{"version": "4", "alerts": [')),
        ("not an object", 422, post(url, b"[1, 2, 3]")),
        ("wrong version", 422, post(url, variant(version="3"))),
        ("missing groupKey", 422, post(url, {k: v for k, v in good.items() if k != "groupKey"})),
        ("missing fingerprint", 422, post(url, no_fingerprint)),
        ("wrong type", 422, post(url, variant(truncatedAlerts="none"))),
        ("wrong status", 422, post(url, variant(status="pending"))),
        ("absurd label set", 422, post(url, many_labels)),
        ("oversized body", 413, post(url, b"{" + b" " * (MAX_BODY + 10) + b"}")),
        ("wrong content type", 415, post(url, good, content_type="text/plain")),
        ("missing token", 401, post(url, good, token=None)),
        ("wrong token", 401, post(url, good, token="guess")),
        ("unknown path", 404, post(f"{base}/api/v2/alerts", good)),
        ("wrong method", 405, am.http_json("GET", url)),
        ("wrong method on health", 405, am.http_json("DELETE", f"{base}/healthz")),
    ]
    for what, expected, (status, body) in cases:
        assert status == expected, (what, status, body)
        assert isinstance(body, dict) and body.get("error"), (what, body)
    fields = {what: body.get("errors", [{}])[0].get("field") for what, _, (_, body) in cases}
    assert fields["wrong version"] == "version"
    assert fields["missing groupKey"] == "groupKey"
    assert fields["missing fingerprint"] == "alerts[0].fingerprint"
    assert fields["wrong type"] == "truncatedAlerts"
    assert fields["absurd label set"] == "alerts[0].labels"

    assert incidents(cluster, namespace) == [], "nothing is written for bad input"
    assert am.http_json("GET", f"{base}/healthz")[0] == 200, "the receiver stays up"
    assert am.http_json("GET", f"{base}/readyz")[0] == 200
    status, body = post(url, good)
    assert status == 200 and body["created"], body


def test_token_rotation_drops_nothing(
    cluster: controlplane.ControlPlane, receiver: OperatorProcess, tokens: tuple[Path, Path], namespace: str
) -> None:
    current, previous = tokens
    group = {"alertname": "Rotation", "namespace": namespace}
    body = payload([alert(namespace=namespace)], group_labels=group)
    try:
        _write(previous, TOKEN)
        _write(current, "e2e-token-next")
        assert post(receiver.alerts_url, body, token="e2e-token-next")[0] == 200, "the new token, without a restart"
        assert post(receiver.alerts_url, body, token=TOKEN)[0] == 200, "senders not yet rotated still get in"
        assert post(receiver.alerts_url, body, token=PREVIOUS)[0] == 401, "the token before is gone"
    finally:
        _write(current, TOKEN)
        _write(previous, PREVIOUS)
    assert post(receiver.alerts_url, body, token=TOKEN)[0] == 200
    assert len(incidents(cluster, namespace)) == 1


def test_prometheus_rule_to_alertmanager_to_incident(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    alertmanager: am.Alertmanager,
    namespace: str,
    policy: dict[str, Any],
    tmp_path: Path,
) -> None:
    rules = am.example_rule_file("availability.yaml", tmp_path, **{"for": "0s"})
    with am.Exporter() as exporter:
        # Every probe of checkout fails: availability 0% < 99%.
        exporter.text = f'probe_success{{namespace="{namespace}",service="checkout"}} 0\n'
        with am.run_prometheus(
            tmp_path / "prometheus",
            scrape=[f"127.0.0.1:{exporter.port}"],
            rule_files=[rules],
            alertmanager=alertmanager.url,
        ):
            obj = the_incident(
                cluster, namespace, "an incident from the Prometheus rule", lambda o: alerts_of(o).get("firing") == 1
            )
            assert obj["spec"]["source"]["labels"]["alertname"] == "AvailabilityBelow99Percent"
            assert obj["spec"]["source"]["labels"]["severity"] == "critical"
            assert obj["spec"]["title"] == f"checkout in {namespace}: availability below 99%"
            obj = the_incident(cluster, namespace, "classification", lambda o: (o.get("status") or {}).get("severity"))
            assert obj["status"]["severity"] == "P1", "the rule's severity, classified by the policy"


# --- a storm of hypothesis-made payloads ---------------------------------------------------------------

CLIENTS = 8
SECOND = datetime.timedelta(seconds=1)
_few_labels = st.dictionaries(label_names, label_values, max_size=3)


def _counts(body: dict[str, Any]) -> dict[str, int]:
    firing = sum(a["status"] == "firing" for a in body["alerts"])
    return {"firing": firing, "resolved": len(body["alerts"]) - firing}


def _expected_status(raw: bytes) -> int:
    try:
        parse(raw)
    except PayloadError as exc:
        return exc.status
    return 200


@st.composite
def group_histories(draw: st.DrawFn, namespace: str, run: str, index: int) -> list[dict[str, Any]]:
    """The POSTs of one alert group over time, as Alertmanager sends them: each the whole group as it stands.

    Its members keep their labels (any text, besides the workload and group
    labels) and their ``startsAt`` (any: zero, far past, far future, any
    offset); which of them fire changes from snapshot to snapshot.
    """
    alertname = f"Load{index}"
    group = {"alertname": alertname, "namespace": namespace}
    members = [
        alert(starts_at=draw(starts_at_values), annotations=draw(_few_labels), namespace=namespace, pod=f"p{index}-{i}")
        for i in range(draw(st.integers(1, 6)))
    ]
    for member in members:
        member["labels"] = {**draw(_few_labels), **member["labels"], "alertname": alertname}
        member["fingerprint"] = fingerprint(member["labels"])
    snapshots = []
    for _ in range(draw(st.integers(1, 6))):
        firing = draw(st.lists(st.booleans(), min_size=len(members), max_size=len(members)))
        alerts = [
            {**m, "status": "firing" if f else "resolved", "endsAt": ZERO_TIME if f else "2025-01-31T14:30:00Z"}
            for m, f in zip(members, firing, strict=True)
        ]
        snapshot = payload(
            alerts, group_labels=group, group_key=f'{run}:{{alertname="{alertname}",namespace="{namespace}"}}'
        )
        # Alertmanager's is a uint64, the API server keeps an int64: 2**63 is refused (422).
        snapshot["truncatedAlerts"] = draw(st.sampled_from([0, 0, 0, 0, 0, 3, 2**63 - 1, 2**63]))
        snapshots.append(snapshot)
    return snapshots


async def _storm(url: str, clients: list[list[tuple[bytes, int]]]) -> list[dict[str, Any]]:
    """Each client sends its POSTs in order, the clients all at once; ``(body, n)``: n deliveries at once."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    answers: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:

        async def one(client: int, seq: int, raw: bytes) -> None:
            start = time.monotonic()
            async with session.post(url, data=raw, headers=headers) as response:
                answer = await response.json()
            elapsed = time.monotonic() - start
            answers.append(
                {"client": client, "seq": seq, "body": raw, "status": response.status, "answer": answer, "s": elapsed}
            )

        async def client(index: int, posts: list[tuple[bytes, int]]) -> None:
            for seq, (raw, deliveries) in enumerate(posts):
                await asyncio.gather(*(one(index, seq, raw) for _ in range(deliveries)))

        await asyncio.gather(*(client(i, posts) for i, posts in enumerate(clients)))
    return answers


def _summary(answers: list[dict[str, Any]]) -> str:
    statuses = collections.Counter(a["status"] for a in answers)
    ok = sorted(a["s"] for a in answers if a["status"] == 200)
    p50, p99 = (ok[min(len(ok) - 1, int(q * len(ok)))] * 1000 if ok else float("nan") for q in (0.5, 0.99))
    return f"{len(answers)} POSTs {dict(sorted(statuses.items()))}, 200s p50 {p50:.0f} ms p99 {p99:.0f} ms"


@settings(
    max_examples=20,
    deadline=None,
    # An example takes seconds against the real operator: a failure is reported whole, not shrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_storm_of_valid_and_mutated_posts_is_never_5xx_and_every_group_gets_its_incident(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    operator_namespace: str,
    namespace: str,
    policy: dict[str, Any],
    data: st.DataObject,
) -> None:
    run = uuid.uuid4().hex[:8]  # the namespace is shared by the examples: each has groups of its own
    groups = [data.draw(group_histories(namespace, run, i)) for i in range(data.draw(st.integers(8, 16)))]
    clients: list[list[tuple[bytes, int]]] = [[] for _ in range(CLIENTS)]
    for i, history in enumerate(groups):
        posts = clients[i % CLIENTS]
        for snapshot in history:
            if data.draw(st.booleans(), label="a near miss first"):
                posts.append((json.dumps(data.draw(mutated_payloads(st.just(snapshot)))).encode(), 1))
            posts.append((json.dumps(snapshot).encode(), 1))
        if data.draw(st.booleans(), label="the last flush from three Alertmanagers at once"):
            posts[-1] = (posts[-1][0], 3)

    answers = asyncio.run(_storm(receiver.alerts_url, clients))
    summary = _summary(answers)
    print(summary)
    failed = [(a["status"], a["answer"], round(a["s"], 2)) for a in answers if a["status"] >= 500]
    assert not failed, f"{summary}; 5xx: {failed[:5]}"
    wrong = [(a["status"], _expected_status(a["body"]), a["answer"]) for a in answers]
    assert [w for w in wrong if w[0] != w[1]] == [], "every valid POST is 200, every other one its 4xx"
    ok = [a for a in answers if a["status"] == 200]
    assert [a["answer"]["alerts"] for a in ok] == [_counts(json.loads(a["body"])) for a in ok]

    # The last answer naming an incident (in its client's order) says what the incident holds now.
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for a in sorted(ok, key=lambda a: (a["client"], a["seq"])):
        if a["answer"]["incident"]:
            where = a["answer"]["incident"]
            expected[(where["namespace"], where["name"])] = a["answer"]["alerts"]
    found = {
        (i["metadata"]["namespace"], i["metadata"]["name"]): i
        for ns in (namespace, operator_namespace)
        for i in incidents(cluster, ns)
    }
    ours = {k for k, i in found.items() if k[0] == namespace and i["spec"]["source"]["groupKey"].startswith(run)}
    assert ours <= set(expected), "no incident but those the answers named"
    for key, counts in expected.items():
        alerts = alerts_of(found[key])
        assert {"firing": alerts["firing"], "resolved": alerts["resolved"]} == counts, key
        started = datetime.datetime.fromisoformat(found[key]["status"]["startedAt"])
        assert datetime.datetime(2, 1, 1, tzinfo=datetime.UTC) <= started, key
        # (A second of slack: the operator may have set it first, to the creationTimestamp, a whole second.)
        assert started <= datetime.datetime.fromisoformat(alerts["lastReceivedAt"]) + SECOND, key
    # Every group that fired has its one incident.
    for history in groups:
        if not any(s["status"] == "firing" and _expected_status(json.dumps(s).encode()) == 200 for s in history):
            continue
        gid = alertgroups.group_id("incidentops", history[0]["groupKey"])
        mine = [k for k, i in found.items() if i["metadata"]["labels"][alertgroups.ALERT_GROUP_LABEL] == gid]
        assert len([k for k in mine if k[0] == namespace]) == 1, (history[0]["groupKey"], mine)


# --- when an alert-born incident started -------------------------------------------------------------------


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "starts_at",
    [
        pytest.param(lambda: ZERO_TIME, id="alertmanagers-zero-time"),
        pytest.param(lambda: _iso(datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=6)), id="clock-ahead"),
        pytest.param(lambda: "9999-12-31T23:59:59Z", id="far-future"),
    ],
)
def test_an_incident_starts_when_its_alerts_say_or_on_receipt_never_in_year_1_or_later(
    cluster: controlplane.ControlPlane,
    receiver: OperatorProcess,
    receivers: Receivers,
    namespace: str,
    starts_at: Any,
) -> None:
    cluster.apply(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "paging", "namespace": namespace},
            "spec": {
                "levels": [
                    {"name": "on-call", "after": "0s", "notify": ["hook"]},
                    {"name": "team-lead", "after": "1h", "notify": ["hook"]},
                    {"name": "cto", "after": "2h", "notify": ["hook"]},
                ],
                "channels": [{"name": "hook", "webhook": {"url": f"{receivers.base_url}/webhook/hook"}}],
            },
        }
    )
    group = {"alertname": "StartTime", "namespace": namespace}
    alerts = [alert(starts_at=starts_at(), namespace=namespace, severity="critical", pod=f"s-{i}") for i in range(3)]
    before = datetime.datetime.now(datetime.UTC)
    status, answer = post(receiver.alerts_url, payload(alerts, group_labels=group))
    after = datetime.datetime.now(datetime.UTC)
    assert status == 200 and answer["created"], answer
    name = answer["incident"]["name"]

    def paged() -> list[tuple[str, str | None]]:
        return [
            (d.body["event"], d.body.get("levelName"))
            for d in receivers.of("webhook", incident=name)
            if isinstance(d.body, dict) and d.body.get("incident", {}).get("name") == name
        ]

    eventually("the first level's page", lambda: ("triggered", "on-call") in paged(), timeout=60)
    obj = the_incident(cluster, namespace, "the first level reached", lambda o: o["status"].get("escalation"))
    started = datetime.datetime.fromisoformat(obj["status"]["startedAt"])
    created = datetime.datetime.fromisoformat(obj["metadata"]["creationTimestamp"])
    assert before - datetime.timedelta(seconds=1) <= started <= after, "the POST's receipt"
    assert abs(started - created) < datetime.timedelta(seconds=5)
    assert obj["status"]["severity"] == "P1"
    assert obj["status"]["escalation"]["levelName"] == "on-call"
    breached = condition(obj, "SLABreached")
    assert breached is None or breached["status"] != "True", breached
    assert paged() == [("triggered", "on-call")], "only the first level, no breach"
