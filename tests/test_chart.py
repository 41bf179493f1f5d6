"""The Helm chart: lint, rendering, security, schema, RBAC against the code, documented values.

Rendering needs the `helm` binary, which e2e/cluster builds from its Go module. Without it those
tests skip on a developer machine and fail in CI (where `CI` is set), so CI never passes by
skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptive_operator.permissions import PERMISSIONS, Permission, scale_target

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "adaptive-operator"
CACHE = Path(os.environ.get("ADAPTIVE_CACHE", Path.home() / ".cache" / "adaptive-operator"))
NAMESPACE = "adaptive-system"
RELEASE = "ao"
FULLNAME = "ao-adaptive-operator"
# `helm template` assumes the Kubernetes version helm was built against, which a build without
# version stamps reports as v1.20; the chart needs 1.25 or later.
KUBE_VERSION = "1.30.0"

Manifest = dict[str, Any]
Triple = tuple[str, str, str]


def helm_candidates() -> Iterator[Path]:
    on_path = shutil.which("helm")
    if on_path:
        yield Path(on_path)
    state = os.environ.get("ADAPTIVE_CLUSTER_STATE")
    if state:
        yield Path(state) / "bin" / "helm"
    yield CACHE / "cluster" / "bin" / "helm"
    # e2e/cluster's build cache, before `e2e/cluster up` has linked it into a bin folder.
    built = [p for p in CACHE.glob("bin/helm-*/helm") if not p.parent.name.endswith(".tmp")]
    yield from sorted(built, key=lambda p: p.stat().st_mtime, reverse=True)


def find_helm() -> Path | None:
    return next((p for p in helm_candidates() if p.is_file() and os.access(p, os.X_OK)), None)


@pytest.fixture(scope="session")
def helm() -> Path:
    found = find_helm()
    if found is None:
        reason = ("helm not found on PATH nor in ~/.cache/adaptive-operator "
                  "(`e2e/cluster build` makes it)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir()})


def template(helm: Path, values: dict[str, Any] | None = None,
             chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(values or {}, handle)  # JSON is YAML, and needs no quoting rules
    try:
        return run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE,
                        "--kube-version", KUBE_VERSION, "--values", handle.name)
    finally:
        os.unlink(handle.name)


def render(helm: Path, values: dict[str, Any] | None = None,
           chart: Path = CHART) -> list[Manifest]:
    result = template(helm, values, chart)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_role(manifests: Iterable[Manifest]) -> Manifest:
    """The operator's own ClusterRole (not the users' aggregated view and edit roles)."""
    roles = [m for m in by_kind(manifests, "ClusterRole")
             if not m["metadata"]["name"].endswith(("-view", "-edit"))]
    assert len(roles) == 1, f"expected one operator ClusterRole, got {len(roles)}"
    return roles[0]


def container(manifests: Iterable[Manifest]) -> Manifest:
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    result: Manifest = pod["containers"][0]
    return result


@pytest.fixture(scope="session")
def defaults(helm: Path) -> list[Manifest]:
    return render(helm)


# --- lint and rendering --------------------------------------------------------------------

def test_helm_lint_strict_passes(helm: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


# The chart ships the CRDs `adaptive-operator crds` writes to files/crds.
BASE_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service",
              "PodDisruptionBudget", "CustomResourceDefinition", "ConfigMap"}


@pytest.mark.parametrize(("values", "kinds"), [
    pytest.param({}, BASE_KINDS, id="defaults-give-ha-operator-with-rbac-and-pdb"),
    pytest.param({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
                 BASE_KINDS | {"ServiceMonitor"}, id="service-monitor-on-for-prometheus-operator"),
    pytest.param({"prometheusRule": {"enabled": True}}, BASE_KINDS | {"PrometheusRule"},
                 id="alerts-on-for-prometheus-operator"),
    pytest.param({"grafanaDashboard": {"enabled": False}}, BASE_KINDS - {"ConfigMap"},
                 id="dashboard-switched-off"),
    pytest.param({"replicas": 1}, BASE_KINDS - {"PodDisruptionBudget"},
                 id="single-replica-has-no-pdb-that-would-block-drains"),
    pytest.param({"podDisruptionBudget": {"enabled": False}}, BASE_KINDS - {"PodDisruptionBudget"},
                 id="pdb-switched-off"),
    pytest.param({"rbac": {"create": False},
                  "serviceAccount": {"create": False, "name": "provided"}},
                 BASE_KINDS - {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"},
                 id="rbac-and-service-account-provided-by-the-platform-team"),
    pytest.param({"watch": {"namespaces": ["team-a", "team-b"]}}, BASE_KINDS,
                 id="namespaced-mode-renders-the-same-objects"),
])
def test_value_sets_render_the_expected_objects(
        helm: Path, values: dict[str, Any], kinds: set[str]) -> None:
    manifests = render(helm, values)
    assert {m["kind"] for m in manifests} == kinds
    for manifest in manifests:
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


@pytest.mark.parametrize(("values", "expected", "absent"), [
    pytest.param({}, ["--all-namespaces", "--metrics-port=8080", "--health-port=8081",
                      "--log-level=info"], ["--namespace"], id="all-namespaces-by-default"),
    pytest.param({"watch": {"namespaces": ["team-a", "team-b"]}, "logLevel": "debug"},
                 ["--namespace=team-a", "--namespace=team-b", "--log-level=debug"],
                 ["--all-namespaces"], id="namespaced-mode-passes-each-namespace"),
])
def test_operator_arguments_follow_values(
        helm: Path, values: dict[str, Any], expected: list[str], absent: list[str]) -> None:
    args = container(render(helm, values))["args"]
    assert all(arg in args for arg in expected), args
    assert not [arg for arg in args for prefix in absent if arg.startswith(prefix)], args


@pytest.mark.parametrize("values", [
    pytest.param({}, id="defaults"),
    pytest.param({"watch": {"namespaces": ["team-a", "team-b"]}}, id="namespaced"),
    pytest.param({"peering": {"name": "team-a-operator"}}, id="own-peering"),
])
def test_the_operator_accepts_the_rendered_command(
        helm: Path, values: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The rendered args and environment go through the real parser: a flag it refuses
    crash-loops every install, and an environment variable it does not read does nothing."""
    from adaptive_operator.cli import build_parser
    from adaptive_operator.commands.run import namespaces

    monkeypatch.setenv("WATCH_NAMESPACES", "stale-value")
    rendered = container(render(helm, values))
    for variable in rendered["env"]:
        if "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert entrypoint, "the Dockerfile names no exec-form ENTRYPOINT"
    program, *subcommand = json.loads(entrypoint.group(1))
    assert program == "adaptive-operator"
    args = build_parser().parse_args([*subcommand, *rendered["args"]])
    assert args.command == "run"
    assert namespaces(args) == values.get("watch", {}).get("namespaces", [])
    # Two releases in one namespace must not share one Lease (one would never lead).
    assert args.lease_name == values.get("peering", {}).get("name", FULLNAME)


def test_environment_carries_prometheus_url_and_peering(helm: Path) -> None:
    manifests = render(helm, {"prometheus": {"url": "http://prom.example:9090"},
                              "extraEnv": [{"name": "TZ", "value": "UTC"}]})
    env = {e["name"]: e.get("value") for e in container(manifests)["env"]}
    assert env["PROMETHEUS_URL"] == "http://prom.example:9090"
    assert env["LEASE_NAME"] == FULLNAME
    assert env["LEASE_SHARDS"] == "1"
    assert env["TZ"] == "UTC"
    assert {"POD_NAME", "POD_NAMESPACE"} <= env.keys()


def test_lease_shards_reach_the_operator(helm: Path) -> None:
    manifests = render(helm, {"peering": {"leaseShards": 4}})
    env = {e["name"]: e.get("value") for e in container(manifests)["env"]}
    assert env["LEASE_SHARDS"] == "4"


def test_defaults_run_two_replicas_of_the_app_version_image(defaults: list[Manifest]) -> None:
    deployment = one(defaults, "Deployment")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert deployment["spec"]["replicas"] == 2
    assert container(defaults)["image"].endswith(f":{chart['appVersion']}")
    assert one(defaults, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_metrics_service_and_service_monitor_point_at_the_metrics_port(helm: Path) -> None:
    manifests = render(helm, {"metrics": {"port": 9100}, "serviceMonitor": {"enabled": True}})
    ports = {p["name"]: p["containerPort"] for p in container(manifests)["ports"]}
    service = one(manifests, "Service")
    monitor = one(manifests, "ServiceMonitor")
    assert ports["metrics"] == 9100
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()


# --- security ------------------------------------------------------------------------------

def test_pod_runs_non_root_with_runtime_default_seccomp(defaults: list[Manifest]) -> None:
    pod = one(defaults, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["serviceAccountName"] == FULLNAME


def test_container_is_read_only_without_capabilities(defaults: list[Manifest]) -> None:
    operator = container(defaults)
    assert operator["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes = one(defaults, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in volumes)


def test_probes_check_healthz_on_the_health_port(defaults: list[Manifest]) -> None:
    operator = container(defaults)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports["health"] == 8081
    assert operator["resources"]["requests"] and operator["resources"]["limits"]


# --- schema --------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "field"), [
    pytest.param({"replicas": -1}, "replicas", id="negative-replicas"),
    pytest.param({"replicas": "two"}, "replicas", id="replicas-not-a-number"),
    pytest.param({"logLevel": "verbose"}, "logLevel", id="unknown-log-level"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy", id="unknown-pull-policy"),
    pytest.param({"metrics": {"port": 0}}, "port", id="port-zero"),
    pytest.param({"prometheus": {"url": "prometheus:9090"}}, "url", id="url-without-scheme"),
    pytest.param({"watch": {"namespaces": ["Team_A"]}}, "namespaces", id="invalid-namespace"),
    pytest.param({"peering": {"leaseShards": 0}}, "leaseShards", id="no-lease-shards"),
    pytest.param({"peering": {"leaseShards": 17}}, "leaseShards", id="too-many-lease-shards"),
    pytest.param({"replica": 3}, "replica", id="misspelt-top-level-value"),
    pytest.param({"serviceMonitor": {"enable": True}}, "enable", id="misspelt-nested-value"),
])
def test_schema_refuses_bad_values_naming_the_field(
        helm: Path, values: dict[str, Any], field: str) -> None:
    result = template(helm, values)
    assert result.returncode != 0, f"accepted {values}"
    message = result.stderr
    assert "schema" in message and field in message, message
    assert len(message.splitlines()) < 10, message  # one readable complaint, no stack trace


# --- RBAC ----------------------------------------------------------------------------------

KUBERNETES_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete",
                    "deletecollection"}


def test_permissions_list_each_resource_once_with_real_verbs() -> None:
    keys = [(p.api_group, p.resource) for p in PERMISSIONS]
    assert len(keys) == len(set(keys)), "a resource is listed twice"
    for permission in PERMISSIONS:
        assert permission.verbs, permission
        assert len(set(permission.verbs)) == len(permission.verbs), permission
        assert set(permission.verbs) <= KUBERNETES_VERBS, permission
        assert "*" not in permission.resource and "*" not in permission.api_group, permission


def declared_triples(permissions: Iterable[Permission]) -> set[Triple]:
    return {(p.api_group, p.resource, verb) for p in permissions for verb in p.verbs}


def granted_triples(rules: Iterable[Manifest]) -> set[Triple]:
    triples: set[Triple] = set()
    for rule in rules:
        # A wildcard or a name-restricted rule cannot be compared; neither belongs here.
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                triples.update((group, resource, verb) for verb in rule["verbs"])
    assert not any("*" in part for triple in triples for part in triple), triples
    return triples


def rbac_gaps(rules: list[Manifest], permissions: Iterable[Permission]
              ) -> tuple[set[Triple], set[Triple]]:
    """(what the code needs and the chart does not grant, what the chart grants beyond it)."""
    declared, granted = declared_triples(permissions), granted_triples(rules)
    return declared - granted, granted - declared


@pytest.mark.parametrize(("rules", "missing", "extra"), [
    pytest.param([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}],
                 set(), set(), id="exact-match"),
    pytest.param([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
                 {("apps", "deployments", "patch")}, set(), id="chart-lacks-a-verb"),
    pytest.param([{"apiGroups": ["apps"], "resources": ["deployments"],
                   "verbs": ["get", "patch", "delete"]}],
                 set(), {("apps", "deployments", "delete")}, id="chart-grants-too-much"),
])
def test_rbac_gaps_are_found_in_both_directions(
        rules: list[Manifest], missing: set[Triple], extra: set[Triple]) -> None:
    needed = [Permission("apps", "deployments", ("get", "patch"))]
    assert rbac_gaps(rules, needed) == (missing, extra)


def test_rbac_gaps_refuse_wildcards() -> None:
    with pytest.raises(AssertionError):
        rbac_gaps([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], PERMISSIONS)


def test_cluster_role_grants_exactly_what_the_code_calls(defaults: list[Manifest]) -> None:
    role = operator_role(defaults)
    missing, extra = rbac_gaps(role["rules"], PERMISSIONS)
    assert not missing, f"the code calls these, the chart does not grant them: {sorted(missing)}"
    assert not extra, f"the chart grants these, permissions.py does not list them: {sorted(extra)}"


def test_cluster_role_does_not_depend_on_values(helm: Path, defaults: list[Manifest]) -> None:
    """Only a namespaced install (rbac.namespaced) moves rules to Roles (test_chart_rbac)."""
    namespaced = render(helm, {"watch": {"namespaces": ["a"]}, "replicas": 1})
    assert operator_role(namespaced)["rules"] == operator_role(defaults)["rules"]


def test_more_scale_targets_grant_exactly_their_scale(helm: Path) -> None:
    targets = [{"apiGroup": "argoproj.io", "resource": "rollouts"},
               {"apiGroup": "e2e.adaptive.dev", "resource": "widgets"}]
    rules = operator_role(render(helm, {"rbac": {"create": True, "scaleTargets": targets}}))[
        "rules"]
    extra = [p for t in targets for p in scale_target(t["apiGroup"], t["resource"])]
    assert rbac_gaps(rules, (*PERMISSIONS, *extra)) == (set(), set())


def test_the_dashboard_ships_for_grafanas_sidecar(defaults: list[Manifest]) -> None:
    config_map = one(defaults, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["adaptive-operator.json"])
    assert shipped == json.loads((CHART / "files" / "dashboard.json").read_text(encoding="utf-8"))


def test_the_alerts_ship_as_a_prometheus_rule(helm: Path) -> None:
    rule = one(render(helm, {"prometheusRule": {"enabled": True, "labels": {"release": "p"}}}),
               "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "p"
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text(encoding="utf-8"))
    assert rule["spec"] == alerts


def test_binding_gives_the_role_to_the_operator_service_account(defaults: list[Manifest]) -> None:
    binding = one(defaults, "ClusterRoleBinding")
    account = one(defaults, "ServiceAccount")
    assert binding["roleRef"]["name"] == operator_role(defaults)["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]


# --- CRDs ----------------------------------------------------------------------------------

TEST_CRD: Manifest = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.adaptive.dev", "annotations": {"owner": "tests"}},
    "spec": {
        "group": "adaptive.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                  "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1alpha1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
            "subresources": {"status": {}},
        }],
    },
}


@pytest.fixture
def chart_with_crd(tmp_path: Path) -> Path:
    """A copy of the chart with one test CRD alone in files/crds, as `adaptive-operator crds`
    writes them."""
    chart = tmp_path / "adaptive-operator"
    shutil.copytree(CHART, chart)
    for generated in (chart / "files" / "crds").glob("*.yaml"):
        generated.unlink()
    (chart / "files" / "crds" / "widgets.adaptive.dev.yaml").write_text(yaml.safe_dump(TEST_CRD))
    return chart


def test_crds_ship_as_templates_kept_on_uninstall(helm: Path, chart_with_crd: Path) -> None:
    crds = by_kind(render(helm, chart=chart_with_crd), "CustomResourceDefinition")
    [crd] = [c for c in crds if c["metadata"]["name"] == TEST_CRD["metadata"]["name"]]
    assert crd["spec"] == TEST_CRD["spec"]
    assert crd["metadata"]["annotations"] == {"owner": "tests", "helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "adaptive-operator"


def test_crds_can_be_left_out(helm: Path, chart_with_crd: Path) -> None:
    manifests = render(helm, {"crds": {"install": False}}, chart=chart_with_crd)
    assert not by_kind(manifests, "CustomResourceDefinition")


def test_chart_with_crds_lints(helm: Path, chart_with_crd: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(chart_with_crd))
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_itself_ships_no_placeholder_crd() -> None:
    # The real CRDs are generated by `adaptive-operator crds`; nothing hand-written goes there.
    for path in (CHART / "files" / "crds").glob("*.yaml"):
        assert "widgets" not in path.name, path


# --- documentation -------------------------------------------------------------------------

def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """Dotted path of every value, and whether it is a leaf (a scalar, a list or an empty map)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        nested = isinstance(value, dict) and bool(value)
        yield path, not nested
        if nested:
            yield from value_paths(value, f"{path}.")


def documented_paths(readme: str) -> set[str]:
    table = readme.split("## Values", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))


def test_every_value_is_documented_in_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = dict(value_paths(values))
    documented = documented_paths((CHART / "README.md").read_text())
    undocumented = {path for path, leaf in paths.items() if leaf} - documented
    assert not undocumented, f"values missing from the README's table: {sorted(undocumented)}"
    tops = {path.split(".")[0] for path in documented}
    assert set(values) <= tops, sorted(set(values) - tops)
    stale = documented - paths.keys()
    assert not stale, f"documented but not in values.yaml: {sorted(stale)}"


def test_every_value_is_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])


def test_chart_ships_the_generated_crds(helm: Path) -> None:
    names = {m["metadata"]["name"] for m in by_kind(render(helm), "CustomResourceDefinition")}
    assert names == {"adaptiveservices.adaptive.dev", "shardsets.adaptive.dev"}
