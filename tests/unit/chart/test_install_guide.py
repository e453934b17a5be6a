"""docs/install.md's examples are real: every file it quotes exists and is quoted as it is, the chart
renders each values file (so the schema accepts it) into the objects the guide promises, and the
Alertmanager snippet passes amtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.helm import ROOT, find, one, template
from tests.unit.intake.test_examples import tool

GUIDE = ROOT / "docs" / "install.md"
EXAMPLES = ROOT / "docs" / "examples"

# The guide's set-up: incidentops as the release `incidentops` in `incidentops`, next to
# kube-prometheus-stack as the release `kube-prometheus-stack` in `monitoring`.
RELEASE = NAMESPACE = "incidentops"
STACK_RELEASE, STACK_NAMESPACE = "kube-prometheus-stack", "monitoring"
RECEIVER_URL = "http://incidentops-receiver.incidentops.svc:8080/api/v1/alerts"
TOKEN_SECRET = "incidentops-receiver-token"

# A fenced block whose first line is `# docs/examples/<file>` quotes that file.
_QUOTE = re.compile(r"^```[a-z]*\n(# (docs/examples/[^\s]+)\n.*?)^```$", re.DOTALL | re.MULTILINE)
_MENTION = re.compile(r"docs/examples/[A-Za-z0-9_./-]+\.ya?ml")


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


def _render(*names: str) -> list[dict[str, Any]]:
    args = [arg for name in names for arg in ("-f", str(EXAMPLES / name))]
    return template(*args, namespace=NAMESPACE, release=RELEASE)


# --- the guide and its files -----------------------------------------------------------------------


def test_every_file_the_guide_names_exists() -> None:
    text = GUIDE.read_text()
    named = set(_MENTION.findall(text))
    assert named, "the guide names no example"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs/install.md names files that are not there: {missing}"


def test_every_quoted_file_is_quoted_as_it_is() -> None:
    quotes = _QUOTE.findall(GUIDE.read_text())
    assert len(quotes) >= 4, "the guide quotes its values files and the Alertmanager snippet"
    for body, path in quotes:
        assert (ROOT / path).is_file(), f"docs/install.md quotes {path}, which is not there"
        assert body == (ROOT / path).read_text(), f"docs/install.md quotes {path} other than it is"


def test_every_example_is_named_by_the_guide() -> None:
    named = set(_MENTION.findall(GUIDE.read_text()))
    unnamed = sorted(
        f"docs/examples/{p.name}" for p in EXAMPLES.glob("*.yaml") if f"docs/examples/{p.name}" not in named
    )
    assert not unnamed, f"examples nobody reads: {unnamed}"


# --- the chart with each values file ----------------------------------------------------------------


def test_the_main_values_wire_the_operator_into_kube_prometheus_stack() -> None:
    objects = _render("incidentops-values.yaml")
    values = _example("incidentops-values.yaml")

    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{values['image']['repository']}:{values['image']['tag']}"

    # Prometheus of kube-prometheus-stack selects `release: <its release>` by default.
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == STACK_RELEASE
    metrics = one(objects, "Service", f"{RELEASE}-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    rules = find(objects, "PrometheusRule")
    assert len(rules) > 1, "the operator's rules and the example threshold rules"
    assert all(rule["metadata"]["labels"]["release"] == STACK_RELEASE for rule in rules)

    # Grafana's sidecar (kube-prometheus-stack: label grafana_dashboard, value "1", every namespace).
    dashboard = one(objects, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"

    assert one(objects, "ValidatingAdmissionPolicy", f"{RELEASE}-identity")
    assert one(objects, "ValidatingAdmissionPolicyBinding", f"{RELEASE}-identity")

    policy = one(objects, "NetworkPolicy")
    sources = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert sources["receiver"] == values["networkPolicy"]["receiverFrom"]
    assert sources["metrics"] == values["networkPolicy"]["metricsFrom"]


def test_the_alertmanager_config_points_at_the_receiver_service_with_the_generated_token() -> None:
    objects = _render("incidentops-values.yaml")
    service = one(objects, "Service", f"{RELEASE}-receiver")
    secret = one(objects, "Secret", TOKEN_SECRET)
    [port] = service["spec"]["ports"]
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}/api/v1/alerts" == RECEIVER_URL

    config = one(objects, "AlertmanagerConfig")
    assert config["metadata"]["namespace"] == secret["metadata"]["namespace"] == NAMESPACE
    [receiver] = config["spec"]["receivers"]
    assert config["spec"]["route"]["receiver"] == receiver["name"]
    [webhook] = receiver["webhookConfigs"]
    assert webhook["url"] == RECEIVER_URL
    credentials = webhook["httpConfig"]["authorization"]["credentials"]
    assert credentials == {"name": TOKEN_SECRET, "key": "token"}
    assert "token" in secret["data"]


def test_kube_prometheus_stack_lets_alerts_of_every_namespace_reach_the_alertmanager_config() -> None:
    spec = _example("kube-prometheus-stack-values.yaml")["alertmanager"]["alertmanagerSpec"]
    assert spec["alertmanagerConfigMatcherStrategy"] == {"type": "None"}


def test_an_existing_token_is_mounted_and_nothing_is_generated() -> None:
    objects = _render("incidentops-values.yaml", "incidentops-values-existing-token.yaml")
    assert not find(objects, "Secret"), "the token Secret is the one you created"
    assert not find(objects, "AlertmanagerConfig"), "the receiver is in alertmanager.config instead"
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    [token] = [v for v in volumes if v["name"] == "receiver-token"]
    assert token["secret"]["secretName"] == TOKEN_SECRET


def test_the_alertmanager_snippet_reads_the_mounted_token_and_posts_to_the_receiver_service() -> None:
    stack = _example("kube-prometheus-stack-alertmanager.yaml")["alertmanager"]
    token = _example("incidentops-values-existing-token.yaml")["receiver"]["token"]
    assert stack["alertmanagerSpec"]["secrets"] == [token["existingSecret"]]
    config = stack["config"]
    [receiver] = [r for r in config["receivers"] if r["name"] == "incidentops"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == RECEIVER_URL
    assert webhook["send_resolved"] is True
    # prometheus-operator mounts each Secret of alertmanagerSpec.secrets at /etc/alertmanager/secrets/<name>/.
    path = f"/etc/alertmanager/secrets/{token['existingSecret']}/{token['key']}"
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": path}
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "incidentops"]
    assert "namespace" in route["group_by"] and route["continue"] is True


def test_the_alertmanager_snippet_passes_amtool(tmp_path: Path) -> None:
    amtool = tool("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_example("kube-prometheus-stack-alertmanager.yaml")["alertmanager"]["config"]))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tls_from_cert_manager_makes_the_alertmanager_config_use_https_and_trust_its_ca() -> None:
    objects = _render("incidentops-values.yaml", "incidentops-values-tls.yaml")
    issuer = _example("incidentops-values-tls.yaml")["receiver"]["tls"]["certManager"]["issuerRef"]
    certificate = one(objects, "Certificate")
    assert certificate["spec"]["issuerRef"] == {**issuer, "group": "cert-manager.io"}
    assert f"{RELEASE}-receiver.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    [webhook] = one(objects, "AlertmanagerConfig")["spec"]["receivers"][0]["webhookConfigs"]
    assert webhook["url"] == RECEIVER_URL.replace("http://", "https://")
    ca = webhook["httpConfig"]["tlsConfig"]["ca"]["secret"]
    assert ca == {"name": certificate["spec"]["secretName"], "key": "ca.crt"}


@pytest.mark.parametrize("extra", [[], ["incidentops-values-namespaced.yaml"]], ids=["cluster", "namespaced"])
def test_watch_namespaces_puts_the_rights_in_roles_of_those_namespaces(extra: list[str]) -> None:
    objects = _render("incidentops-values.yaml", *extra)
    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    roles = {r["metadata"]["namespace"] for r in find(objects, "Role") if r["metadata"]["name"] == RELEASE}
    if not extra:
        assert "INCIDENTOPS_WATCH_NAMESPACES" not in env and not roles
        return
    watched = _example("incidentops-values-namespaced.yaml")["watchNamespaces"]
    assert env["INCIDENTOPS_WATCH_NAMESPACES"] == ",".join([*watched, NAMESPACE])
    assert roles == {*watched, NAMESPACE}
