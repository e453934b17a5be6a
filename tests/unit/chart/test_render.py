"""The chart rendered without a cluster: lint, the default and the full values, what each object says.

Whether the API server takes the same objects, those of prometheus-operator's and cert-manager's CRDs too,
is tests/e2e/test_chart.py's question.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops import metrics
from incidentops.settings import Settings
from tests.unit.chart.helm import CHART, FULL_VALUES, ROOT, find, helm, one, template
from tests.unit.intake.test_examples import tool

CLUSTERROLE = yaml.safe_load((CHART / "files" / "clusterrole.yaml").read_text())
LEASE_ROLE = yaml.safe_load((CHART / "files" / "role.yaml").read_text())


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(objects)["env"]}


# --- helm itself --------------------------------------------------------------------------------


def test_helm_is_the_pinned_release_and_knows_a_current_kubernetes() -> None:
    from incidentops.testing import build

    assert f'Version:"{build.pinned_version("helm")}"' in helm("version").stdout
    # Without the version link flags helm takes the cluster for v1.20 and the chart's kubeVersion
    # (>=1.30) refuses to render; --kube-version shows the check is real.
    refused = helm("template", "io", str(CHART), "--kube-version", "1.29.0", check=False)
    assert refused.returncode != 0
    assert "chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.29.0" in refused.stderr


@pytest.mark.parametrize("values", [[], ["-f", str(FULL_VALUES)]], ids=["default", "full"])
def test_lint_is_clean_in_strict_mode(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


# --- the default values --------------------------------------------------------------------------


def test_the_default_values_render_the_operator_and_nothing_optional() -> None:
    objects = template()
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition/escalationpolicies.incidentops.dev",
            "CustomResourceDefinition/incidents.incidentops.dev",
            "ServiceAccount/io",
            "Secret/io-receiver-token",
            "ClusterRole/io",
            "ClusterRoleBinding/io",
            "ClusterRole/incidentops-view",
            "ClusterRole/incidentops-edit",
            "Role/io-leader-election",
            "RoleBinding/io-leader-election",
            "Deployment/io",
            "PodDisruptionBudget/io",
            "Service/io-receiver",
            "Service/io-metrics",
        ]
    )
    for o in objects:
        if o["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == "ops", o["metadata"]["name"]


def test_the_deployment_runs_two_locked_down_replicas() -> None:
    objects = template()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "io"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(objects)
    assert container["command"] == ["incidentops"]
    assert container["args"][0] == "run"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "receiver", "scheme": "HTTP"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "receiver", "scheme": "HTTP"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"receiver": Settings().receiver_port, "metrics": Settings().metrics_port}
    # The pods spread over nodes and zones, and the budget keeps one serving through a drain.
    keys = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert all(c["labelSelector"]["matchLabels"] == selector for c in pod["topologySpreadConstraints"])
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}


def test_every_environment_variable_is_a_setting_of_the_operator() -> None:
    env = _env(template())
    fields = {f"INCIDENTOPS_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"not settings of the operator: {set(env) - fields}"
    defaults = Settings()
    assert env["INCIDENTOPS_NAMESPACE"] == "ops"
    assert env["INCIDENTOPS_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "INCIDENTOPS_WATCH_NAMESPACES" not in env, "the whole cluster by default"
    # The chart's defaults are the operator's own: a value left alone means the same in both places.
    assert float(env["INCIDENTOPS_LEASE_DURATION_SECONDS"]) == defaults.lease_duration_seconds
    assert float(env["INCIDENTOPS_LEASE_RENEW_DEADLINE_SECONDS"]) == defaults.lease_renew_deadline_seconds
    assert float(env["INCIDENTOPS_LEASE_RETRY_PERIOD_SECONDS"]) == defaults.lease_retry_period_seconds
    assert env["INCIDENTOPS_LEASE_NAME"] == defaults.lease_name
    assert float(env["INCIDENTOPS_API_TIMEOUT_SECONDS"]) == defaults.api_timeout_seconds
    # Each value parses as the operator parses it.
    parsed = Settings(**{k.removeprefix("INCIDENTOPS_").lower(): v for k, v in env.items() if isinstance(v, str)})
    assert parsed.token_file == Path("/etc/incidentops/receiver/token")


def test_the_token_file_is_the_generated_secret_mounted_read_only() -> None:
    objects = template()
    secret = one(objects, "Secret", "io-receiver-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token)
    assert token != base64.b64decode(one(template(), "Secret")["data"]["token"]).decode(), "random per install"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["receiver-token"]["secret"]["secretName"] == "io-receiver-token"
    mount = next(m for m in _container(objects)["volumeMounts"] if m["name"] == "receiver-token")
    assert mount["readOnly"] is True
    assert Path(mount["mountPath"]) / "token" == Path(_env(objects)["INCIDENTOPS_TOKEN_FILE"])


def test_an_existing_token_secret_is_used_and_none_is_generated() -> None:
    objects = template("--set", "receiver.token.existingSecret=mine", "--set", "receiver.token.key=bearer")
    assert not find(objects, "Secret")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "receiver-token")
    assert volume["secret"] == {"secretName": "mine", "items": [{"key": "bearer", "path": "bearer"}]}
    assert _env(objects)["INCIDENTOPS_TOKEN_FILE"] == "/etc/incidentops/receiver/bearer"


def test_a_rotation_mounts_the_previous_key_optionally_and_the_current_key_required() -> None:
    objects = template()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert volumes["receiver-previous-token"] == {
        "secretName": "io-receiver-token",
        "optional": True,
        "items": [{"key": "previous", "path": "previous"}],
    }
    assert not volumes["receiver-token"].get("optional"), "without the current token the pod must not start"
    mounts = {m["name"]: m for m in _container(objects)["volumeMounts"]}
    previous = Path(_env(objects)["INCIDENTOPS_PREVIOUS_TOKEN_FILE"])
    assert previous == Path(mounts["receiver-previous-token"]["mountPath"]) / "previous"
    assert mounts["receiver-previous-token"]["readOnly"] is True
    assert previous.parent != Path(_env(objects)["INCIDENTOPS_TOKEN_FILE"]).parent

    none = template("--set", "receiver.token.previousKey=")
    assert "INCIDENTOPS_PREVIOUS_TOKEN_FILE" not in _env(none)
    volumes_without = one(none, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert "receiver-previous-token" not in {v["name"] for v in volumes_without}


def test_the_services_select_the_operator_pods_by_port_name() -> None:
    objects = template()
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    receiver, metrics_service = one(objects, "Service", "io-receiver"), one(objects, "Service", "io-metrics")
    for service, port in ((receiver, "receiver"), (metrics_service, "metrics")):
        assert service["spec"]["selector"] == selector
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]


# --- CRDs ----------------------------------------------------------------------------------------


def _generated_crds() -> dict[str, dict[str, Any]]:
    crds = (yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml")))
    return {c["metadata"]["name"]: c for c in crds}


def test_the_chart_copy_of_the_crds_is_crds_byte_for_byte() -> None:
    """files/crds/ is what `make crds` writes into crds/ (which a test holds to the API models)."""
    source = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert copy == source, "charts/incidentops/files/crds/ differs from crds/: run `make crds`"


def test_the_rendered_crds_are_the_generated_ones_kept_by_default() -> None:
    rendered = {c["metadata"]["name"]: c for c in find(template(), "CustomResourceDefinition")}
    generated = _generated_crds()
    assert rendered.keys() == generated.keys()
    for name, crd in rendered.items():
        assert crd["spec"] == generated[name]["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_keep_and_crds_enabled_switch() -> None:
    not_kept = find(template("--set", "crds.keep=false"), "CustomResourceDefinition")
    assert len(not_kept) == 2 and all("annotations" not in c["metadata"] for c in not_kept)
    assert not find(template("--set", "crds.enabled=false"), "CustomResourceDefinition")


# --- RBAC ----------------------------------------------------------------------------------------


def test_the_cluster_role_is_files_clusterrole_yaml() -> None:
    objects = template()
    assert one(objects, "ClusterRole", "io")["rules"] == CLUSTERROLE["rules"]
    binding = one(objects, "ClusterRoleBinding", "io")
    assert binding["roleRef"]["name"] == "io"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "io", "namespace": "ops"}]
    assert one(objects, "Role", "io-leader-election")["rules"] == LEASE_ROLE["rules"]


def test_the_e2e_suite_applies_the_operators_identity_and_the_crds_and_nothing_else() -> None:
    # What tests/e2e/conftest.py applies of the rendered chart (incidentops.testing.install).
    from incidentops.testing.install import operator_objects, render_chart

    found = operator_objects(render_chart(CHART, "ops"))
    assert sorted(c["metadata"]["name"] for c in found.crds) == [
        "escalationpolicies.incidentops.dev",
        "incidents.incidentops.dev",
    ]
    assert [(o["kind"], o["metadata"]["name"]) for o in found.identity] == [
        ("ServiceAccount", "incidentops"),
        ("ClusterRole", "ops"),
        ("Role", "ops-leader-election"),
        ("ClusterRoleBinding", "ops"),
        ("RoleBinding", "ops-leader-election"),
    ], "the people's roles, the Deployment, the Services and the Secret are not the operator's identity"
    assert next(o for o in found.identity if o["kind"] == "ClusterRole")["rules"] == CLUSTERROLE["rules"]


def test_watch_namespaces_turns_the_namespaced_rules_into_roles() -> None:
    objects = template("--set", "watchNamespaces={payments,checkout}")
    assert _env(objects)["INCIDENTOPS_WATCH_NAMESPACES"] == "payments,checkout,ops"
    # Every rule is on namespaced resources (Kopf lists no namespaces and follows no CRDs): no ClusterRole.
    assert not find(objects, "ClusterRole", "io") and not find(objects, "ClusterRoleBinding", "io")
    roles = {r["metadata"]["namespace"]: r for r in find(objects, "Role", "io")}
    assert sorted(roles) == ["checkout", "ops", "payments"]
    bindings = {b["metadata"]["namespace"]: b for b in find(objects, "RoleBinding", "io")}
    assert sorted(bindings) == sorted(roles)
    for namespace, role in roles.items():
        # Nothing lost, nothing added: each Role holds the file's rules.
        assert sorted(map(str, role["rules"])) == sorted(map(str, CLUSTERROLE["rules"])), namespace
        assert bindings[namespace]["subjects"] == [{"kind": "ServiceAccount", "name": "io", "namespace": "ops"}]


def test_people_get_aggregated_view_and_edit_roles_that_never_touch_status() -> None:
    objects = template()
    view, edit = one(objects, "ClusterRole", "incidentops-view"), one(objects, "ClusterRole", "incidentops-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    assert {v for r in view["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    assert any("incidents" in r["resources"] and "patch" in r["verbs"] for r in edit["rules"])
    for role in (view, edit):
        assert not any(res.endswith("/status") for r in role["rules"] for res in r["resources"])
    assert not find(template("--set", "rbac.aggregateClusterRoles=false"), "ClusterRole", "incidentops-edit")


# --- the full values -----------------------------------------------------------------------------


def test_the_full_values_render_every_optional_object() -> None:
    objects = template("-f", str(FULL_VALUES))
    for kind in ("ServiceMonitor", "NetworkPolicy", "AlertmanagerConfig"):
        assert len(find(objects, kind)) == 1, kind
    assert find(objects, "PrometheusRule", "io-ops"), "the operator's own alerts (the thresholds' too: below)"
    assert not find(objects, "Secret"), "existingSecret given"
    for o in objects:
        assert o["metadata"]["labels"]["team"] == "platform", o["metadata"]["name"]
    deployment = one(objects, "Deployment", "io-ops")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "incidentops-operator"
    env = _env(objects)
    assert env["INCIDENTOPS_RECEIVER_PORT"] == "8443" and env["INCIDENTOPS_METRICS_PORT"] == "9100"
    assert env["INCIDENTOPS_POLICY_RECHECK_SECONDS"] == "60"
    assert env["INCIDENTOPS_LEASE_NAME"] == "incidentops-leader-test"
    monitor = one(objects, "ServiceMonitor")
    metrics_service = one(objects, "Service", "io-ops-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics_service["metadata"]["labels"].items()
    receiver_service = one(objects, "Service", "io-ops-receiver")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= receiver_service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    policy = one(objects, "NetworkPolicy")
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == ["receiver", "metrics"]


def test_the_alert_rules_use_metrics_the_operator_exports() -> None:
    rule = one(template("-f", str(FULL_VALUES)), "PrometheusRule", "io-ops")
    exported = {m.name for m in metrics.REGISTRY.collect()}
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"IncidentopsDown", "IncidentopsNotificationsFailing", "IncidentopsSchedulerLate"} <= alerts.keys()
    for alert, expr in alerts.items():
        assert 'job="io-ops-metrics"' in expr, alert
        for name in re.findall(r"\bincidentops_[a-z_]+", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in exported, f"{alert} uses {name}, which incidentops does not export"


def test_the_alert_rules_pass_promtool(tmp_path: Path) -> None:
    rule = one(template("-f", str(FULL_VALUES)), "PrometheusRule", "io-ops")
    for entry in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert entry["labels"]["severity"] in {"critical", "warning"}, entry["alert"]
        assert entry["annotations"]["summary"] and entry["annotations"]["description"], entry["alert"]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule['spec']['groups'][0]['rules'])} rules found" in result.stdout


def test_the_admission_policy_holds_every_by_of_the_spec_to_the_requesting_user() -> None:
    assert not find(template(), "ValidatingAdmissionPolicy"), "off by default"
    objects = template("-f", str(FULL_VALUES))
    policy, binding = one(objects, "ValidatingAdmissionPolicy"), one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system"]
    # Every field of an Incident's spec where a person writes who they are, per the CRD itself.
    crd = next(c for c in _generated_crds().values() if c["spec"]["names"]["kind"] == "Incident")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    with_by = {
        name
        for name, prop in spec.items()
        if "by" in prop.get("properties", {}) or "by" in prop.get("items", {}).get("properties", {})
    }
    rules = policy["spec"]["validations"]
    # `approved: true` on a spec action names nobody: its own rule refuses it on an existing incident.
    (approved,) = [v for v in rules if "spec.actions[].approved" in v.get("message", "")]
    held = {
        m for v in rules if v is not approved for m in re.findall(r"object\.spec\.(\w+)\.(?:by|all)", v["expression"])
    }
    assert with_by == held == {"acknowledgement", "containment", "resolution", "statusUpdate", "approvals", "undo"}


def _tls(objects: list[dict[str, Any]]) -> tuple[str, str, str]:
    """The Secret mounted as the receiver's certificate, and the probes' schemes."""
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "receiver-tls")
    mount = next(m for m in _container(objects)["volumeMounts"] if m["name"] == "receiver-tls")
    env = _env(objects)
    assert env["INCIDENTOPS_TLS_CERT_FILE"] == f"{mount['mountPath']}/tls.crt"
    assert env["INCIDENTOPS_TLS_KEY_FILE"] == f"{mount['mountPath']}/tls.key"
    probes = _container(objects)["livenessProbe"], _container(objects)["readinessProbe"]
    return volume["secret"]["secretName"], probes[0]["httpGet"]["scheme"], probes[1]["httpGet"]["scheme"]


def test_tls_from_an_existing_secret_serves_the_receiver_and_its_probes_over_https() -> None:
    objects = template("-f", str(FULL_VALUES))
    assert _tls(objects) == ("receiver-tls", "HTTPS", "HTTPS")
    assert not find(objects, "Certificate"), "the existing Secret is used"
    assert "INCIDENTOPS_TLS_CERT_FILE" not in _env(template())


def test_tls_from_cert_manager_requests_a_certificate_for_the_receiver_service() -> None:
    objects = template(
        "--set", "receiver.tls.enabled=true", "--set", "receiver.tls.certManager.issuerRef.name=internal-ca"
    )
    certificate = one(objects, "Certificate")
    assert _tls(objects)[0] == certificate["spec"]["secretName"] == "io-receiver-tls"
    assert certificate["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "Issuer", "group": "cert-manager.io"}
    service = one(objects, "Service", "io-receiver")["metadata"]["name"]
    assert f"{service}.ops.svc" in certificate["spec"]["dnsNames"]
    refused = helm("template", "io", str(CHART), "--set", "receiver.tls.enabled=true", check=False)
    assert refused.returncode != 0
    assert "receiver.tls.enabled needs receiver.tls.existingSecret or receiver.tls.certManager.issuerRef.name" in (
        refused.stderr
    )


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_the_alertmanager_config_sends_to_the_receiver_with_the_mounted_token(tls: bool) -> None:
    objects = template("-f", str(FULL_VALUES), "--set", f"receiver.tls.enabled={str(tls).lower()}")
    config = one(objects, "AlertmanagerConfig")
    route, [receiver] = config["spec"]["route"], config["spec"]["receivers"]
    assert route["receiver"] == receiver["name"]
    assert route["groupBy"] == ["alertname", "namespace", "service"]
    assert route["matchers"] == [{"name": "team", "value": "payments", "matchType": "="}]
    [webhook] = receiver["webhookConfigs"]
    service = one(objects, "Service", "io-ops-receiver")
    scheme = "https" if tls else "http"
    assert webhook["url"] == f"{scheme}://io-ops-receiver.ops.svc:{service['spec']['ports'][0]['port']}/api/v1/alerts"
    # The very Secret and key the operator reads its token from.
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    token_volume = next(v for v in pod["volumes"] if v["name"] == "receiver-token")["secret"]
    credentials = webhook["httpConfig"]["authorization"]["credentials"]
    assert credentials == {"name": token_volume["secretName"], "key": token_volume["items"][0]["key"]}
    if tls:
        assert webhook["httpConfig"]["tlsConfig"]["ca"]["secret"] == {"name": "receiver-tls", "key": "ca.crt"}
    else:
        assert "tlsConfig" not in webhook["httpConfig"]
    assert not find(template(), "AlertmanagerConfig"), "off by default"


def test_the_threshold_rules_are_the_examples_and_install_with_the_operator_rules() -> None:
    source = {p.name: p.read_bytes() for p in (ROOT / "examples" / "prometheusrules").glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in (CHART / "files" / "prometheusrules").glob("*.yaml")}
    assert copy == source, "charts/incidentops/files/prometheusrules/ differs from the examples: `make chart-files`"
    rules = {r["metadata"]["name"]: r for r in find(template("-f", str(FULL_VALUES)), "PrometheusRule")}
    for name, text in source.items():
        example = yaml.safe_load(text)
        rendered = rules[f"io-ops-{name.removesuffix('.yaml')}"]
        assert rendered["spec"] == example["spec"], name
        assert rendered["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert len(rules) == len(source) + 1
    off = template("-f", str(FULL_VALUES), "--set", "metrics.prometheusRule.thresholds=false")
    assert [r["metadata"]["name"] for r in find(off, "PrometheusRule")] == ["io-ops"]


def test_the_dashboard_queries_are_promql_over_metrics_the_operator_exports(tmp_path: Path) -> None:
    assert not find(template(), "ConfigMap"), "off by default"
    configmap = one(template("-f", str(FULL_VALUES)), "ConfigMap", "io-ops-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["incidentops.json"])
    exported = {m.name for m in metrics.REGISTRY.collect()}
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    used = set()
    for title, expr in targets:
        names = re.findall(r"\bincidentops_[a-z_]+", expr)
        assert names, title
        for name in names:
            used.add(re.sub(r"_(total|bucket|count|sum)$", "", name))
    assert used <= exported, f"the dashboard queries metrics incidentops does not export: {used - exported}"
    assert exported - used == set(), f"metrics without a panel: {exported - used}"
    # promtool parses each query (Grafana's variables replaced by what they stand for).
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for i, (_, expr) in enumerate(targets):
        promql = expr.replace("$__rate_interval", "5m").replace("$job", ".*")
        rules["groups"][0]["rules"].append({"record": f"dashboard:query{i}", "expr": promql})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
