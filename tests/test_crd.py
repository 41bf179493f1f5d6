"""The CRDs generated from the models: structural, in sync with crds/, and as strict as pydantic."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from adaptive_operator.api.adaptive_service import (
    CONDITION_TYPES,
    COUPLING_RULE,
    RESOURCE,
    AdaptiveServiceSpec,
    AdaptiveServiceStatus,
)
from adaptive_operator.api.base import KubeModel
from adaptive_operator.api.crd import RESOURCES, build_crd, render_all, structural
from adaptive_operator.cli import main

REPO = Path(__file__).resolve().parents[1]

Schema = dict[str, Any]


def spec_schema() -> Schema:
    crd = build_crd(RESOURCE)
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _untyped(node: Schema) -> bool:
    markers = ("type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
    return not any(node.get(m) for m in markers)


def _typed_unions(node: Schema) -> list[str]:
    return [
        key
        for key in ("anyOf", "oneOf", "allOf")
        if any("type" in o or "$ref" in o for o in node.get(key, []))
    ]


def _numeric_bounds(node: Schema) -> list[str]:
    bounds = [b for b in ("exclusiveMinimum", "exclusiveMaximum") if b in node]
    return [b for b in bounds if not isinstance(node[b], bool)]


def node_problems(node: Schema, path: str) -> list[str]:
    """Violations of the structural-schema rules at one node."""
    problems = [f"{path}: no type"] if _untyped(node) else []
    problems += [f"{path}: has {k}" for k in ("$ref", "title", "$defs", "const") if k in node]
    problems += [f"{path}: {k} with a type inside" for k in _typed_unions(node)]
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties false")
    return problems + [f"{path}: numeric {b}" for b in _numeric_bounds(node)]


def walk(node: Schema, path: str = "$") -> list[str]:
    """Every violation in the tree, with the path where it happens."""
    problems = node_problems(node, path)
    for name, child in node.get("properties", {}).items():
        problems += walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += walk(node["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource: Any) -> None:
    schema = build_crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema) == []


def test_walk_catches_what_pydantic_emits_raw() -> None:
    raw = AdaptiveServiceSpec.model_json_schema(by_alias=True)
    assert walk(raw)  # the checker is not vacuous: the untransformed schema fails it


class _Inner(KubeModel):
    ratio: float = 1.0


class _Outer(KubeModel):
    """A model exercising every transformation."""

    inner: _Inner | None = None
    fixed: str = "x"
    mapping: dict[str, _Inner] = {}
    positive: float = 1.0


def test_structural_transformations() -> None:
    raw = _Outer.model_json_schema(by_alias=True)
    raw["properties"]["fixed"]["const"] = "x"
    raw["properties"]["positive"]["exclusiveMinimum"] = 0
    out = structural(raw)
    props = out["properties"]
    assert props["inner"] == {
        "type": "object",
        "nullable": True,
        "properties": {"ratio": {"type": "number", "default": 1.0}},
    }
    assert props["fixed"]["enum"] == ["x"]
    assert props["mapping"]["additionalProperties"]["properties"]["ratio"]["type"] == "number"
    assert props["positive"]["minimum"] == 0 and props["positive"]["exclusiveMinimum"] is True
    assert walk(out) == []


def test_union_of_two_types_is_refused() -> None:
    with pytest.raises(ValueError, match="union"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


def test_cel_rule_spans_min_and_max() -> None:
    rules = spec_schema()["x-kubernetes-validations"]
    assert {
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must be less than or equal to maxReplicas",
    } in rules


def test_printer_columns_and_status_subresource() -> None:
    version = build_crd(RESOURCE)["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Target",
        "Min",
        "Max",
        "Current",
        "Desired",
        "Mode",
        "Forecast",
        "Coupling",
        "Age",
    ]
    assert version["subresources"] == {"status": {}}
    assert "scale" not in version["subresources"]


@pytest.mark.parametrize("folder", ["crds", "charts/adaptive-operator/files/crds"])
def test_committed_crds_match_the_models(folder: str) -> None:
    for name, text in render_all().items():
        committed = REPO / folder / name
        assert committed.exists(), f"{committed} missing: run `adaptive-operator crds`"
        assert committed.read_text(encoding="utf-8") == text, (
            f"{committed} drifted from the models: run `adaptive-operator crds`"
        )


def test_crds_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 1
    assert "missing" in capsys.readouterr().out
    assert main(["crds", "--out", str(tmp_path)]) == 0
    written = tmp_path / "adaptiveservices.adaptive.dev.yaml"
    assert yaml.safe_load(written.read_text())["kind"] == "CustomResourceDefinition"
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 0
    written.write_text(written.read_text().replace("minimum: 1", "minimum: 2", 1))
    assert main(["crds", "--out", str(tmp_path), "--check"]) == 1
    assert "differ" in capsys.readouterr().out


def test_crds_command_refuses_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert main(["crds", "--out", str(target)]) == 2


# --- pydantic refuses what the schema refuses ---------------------------------------------------


_TYPE_CHECKS: dict[str, Any] = {
    "object": lambda node, v: isinstance(v, dict) and _object_ok(node, v),
    "array": lambda node, v: isinstance(v, list) and _array_ok(node, v),
    "integer": lambda node, v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda node, v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda node, v: isinstance(v, str) and _string_ok(node, v),
    "boolean": lambda node, v: isinstance(v, bool),
}


def validate(node: Schema, value: Any) -> bool:
    """A small OpenAPI v3 validator for the keywords our schemas use, plus `a <= b` CEL rules."""
    if value is None:
        return bool(node.get("nullable"))
    if not _TYPE_CHECKS[node["type"]](node, value):
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    return _bounds_ok(node, value)


def _bounds_ok(node: Schema, value: Any) -> bool:
    if "minimum" in node and (
        value < node["minimum"] or (node.get("exclusiveMinimum") and value == node["minimum"])
    ):
        return False
    return "maximum" not in node or (
        value < node["maximum"] or (value == node["maximum"] and not node.get("exclusiveMaximum"))
    )


def _string_ok(node: Schema, value: str) -> bool:
    if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value)):
        return False
    return "pattern" not in node or re.search(node["pattern"], value) is not None


def _array_ok(node: Schema, value: list[Any]) -> bool:
    if len(value) > node.get("maxItems", len(value)):
        return False
    return len(value) >= node.get("minItems", 0) and all(validate(node["items"], v) for v in value)


def _object_ok(node: Schema, value: dict[str, Any]) -> bool:
    props = node.get("properties", {})
    if any(k not in value for k in node.get("required", [])):
        return False
    if not all(validate(props[k], v) for k, v in value.items() if k in props):
        return False
    return all(_rule_ok(rule["rule"], props, value)
               for rule in node.get("x-kubernetes-validations", []))


def _rule_ok(rule: str, props: dict[str, Any], value: dict[str, Any]) -> bool:
    """One CEL rule of the object: the coupling rule, or one that compares two fields."""
    if rule == COUPLING_RULE["rule"]:  # no coupling without a forecast
        return not (value.get("coupling") and not (value.get("predictive") or {}).get("enabled"))
    simple = re.fullmatch(r"self\.(\w+) <= self\.(\w+)", rule)
    if simple is None:  # other rules are checked on the real API server (e2e)
        return True
    left, right = simple.groups()
    defaults = {k: p.get("default") for k, p in props.items()}
    fields = {**defaults, **value}
    return not fields[left] > fields[right]


GOOD: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    "minReplicas": 2,
    "maxReplicas": 10,
    "metrics": [
        {"name": "rps", "query": "sum(rate(http_requests_total[1m]))", "targetPerReplica": 50}
    ],
    "behavior": {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        }
    },
    "mode": "DryRun",
}


def bad(path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return obj


UPSTREAM = {"service": "frontend", "metric": "rps"}


def coupled(upstreams: list[dict[str, str]]) -> dict[str, Any]:
    return {**GOOD, "predictive": {"enabled": True}, "coupling": upstreams}


def test_a_coupled_service_with_a_forecast_is_accepted() -> None:
    assert validate(spec_schema(), coupled([UPSTREAM]))
    spec = AdaptiveServiceSpec.model_validate(coupled([UPSTREAM]))
    assert spec.coupling is not None and spec.coupling[0].service == "frontend"


def test_pydantic_refuses_an_upstream_named_twice() -> None:
    with pytest.raises(ValidationError, match="twice"):
        AdaptiveServiceSpec.model_validate(coupled([UPSTREAM, UPSTREAM]))


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(bad("minReplicas", 11), id="min-above-max"),
        pytest.param(bad("minReplicas", -1), id="negative-min-replicas"),
        pytest.param(bad("maxReplicas", 0), id="zero-max-replicas"),
        pytest.param(bad("mode", "Sometimes"), id="unknown-mode"),
        pytest.param(bad("behavior.scaleDown.policies.0.type", "Pod"), id="bad-policy-type"),
        pytest.param(bad("behavior.scaleDown.policies.0.periodSeconds", 0), id="zero-period"),
        pytest.param(
            bad("behavior.scaleDown.stabilizationWindowSeconds", 3601), id="window-over-an-hour"
        ),
        pytest.param(bad("behavior.scaleDown.selectPolicy", "Maximum"), id="bad-select-policy"),
        pytest.param(bad("metrics", []), id="no-metrics"),
        pytest.param(bad("metrics.0.targetPerReplica", 0), id="zero-target"),
        pytest.param(bad("metrics.0.query", ""), id="empty-query"),
        pytest.param(bad("tolerance", 1.5), id="tolerance-above-one"),
        pytest.param(bad("scaleTargetRef.name", ""), id="empty-target-name"),
        pytest.param(bad("prometheus", {"url": "prometheus:9090"}), id="url-without-scheme"),
        pytest.param(bad("syncPeriodSeconds", 0), id="zero-sync-period"),
        pytest.param({k: v for k, v in GOOD.items() if k != "maxReplicas"}, id="missing-max"),
        pytest.param(bad("coupling", [UPSTREAM]), id="coupling-without-predictive"),
        pytest.param(coupled([{"service": "Front_End", "metric": "rps"}]),
                     id="coupling-service-not-a-name"),
        pytest.param(coupled([{"service": "a", "metric": "x" * 64}]), id="coupling-metric-long"),
        pytest.param(coupled([{"service": f"s{i}", "metric": "rps"} for i in range(5)]),
                     id="coupling-five-upstreams"),
    ],
)
def test_schema_and_pydantic_refuse_the_same_objects(obj: dict[str, Any]) -> None:
    assert not validate(spec_schema(), obj)
    with pytest.raises(ValidationError):
        AdaptiveServiceSpec.model_validate(obj)


def test_schema_and_pydantic_accept_a_good_object() -> None:
    assert validate(spec_schema(), GOOD)
    spec = AdaptiveServiceSpec.model_validate(GOOD)
    assert (spec.min_replicas, spec.mode, spec.sync_period_seconds) == (2, "DryRun", 15)
    assert spec.model_dump(by_alias=True, exclude_none=True)["scaleTargetRef"]["name"] == "web"


def test_defaults_match_hpa() -> None:
    spec = AdaptiveServiceSpec.model_validate(
        {k: v for k, v in GOOD.items() if k not in ("minReplicas", "mode", "behavior")}
    )
    assert (spec.min_replicas, spec.tolerance, spec.mode, spec.behavior) == (1, 0.1, "Active", None)


def test_spec_is_extensible_by_subclassing() -> None:
    class Experiment(KubeModel):
        lookahead_seconds: int = 300

    class ExtendedSpec(AdaptiveServiceSpec):
        experiment: Experiment | None = None

    schema = structural(ExtendedSpec.model_json_schema(by_alias=True))
    assert schema["properties"]["experiment"]["properties"]["lookaheadSeconds"]["type"] == "integer"
    assert schema["x-kubernetes-validations"]
    assert issubclass(ExtendedSpec, BaseModel)


def test_conditions_follow_the_api_conventions() -> None:
    good = {
        "type": "Ready",
        "status": "True",
        "reason": "ScaleUp",
        "message": "scaled to 7",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
        "observedGeneration": 3,
    }
    status = AdaptiveServiceStatus.model_validate({"conditions": [good]})
    assert status.conditions[0].observed_generation == 3
    for field, value in (("reason", "scale up"), ("status", "Yes")):
        with pytest.raises(ValidationError):
            AdaptiveServiceStatus.model_validate({"conditions": [{**good, field: value}]})
    assert set(CONDITION_TYPES) == {"Ready", "MetricsAvailable", "ScalingActive", "ScalingLimited"}


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    crd = build_crd(RESOURCE)
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]
