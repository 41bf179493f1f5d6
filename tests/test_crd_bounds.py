"""Every field a tenant writes has a bound, so one object cannot hurt the others: strings a
maxLength (or an enum), lists a maxItems, maps a maxProperties, numbers a maximum; names are
DNS-1123; the models refuse what the CRDs refuse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from adaptive_operator.api import adaptive_service, shard_set
from adaptive_operator.api.base import MESSAGE_LENGTH, truncated
from adaptive_operator.api.crd import RESOURCES, object_schema

Schema = dict[str, Any]


def _children(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    for name, child in (node.get("properties") or {}).items():
        yield f"{path}.{name}", child
    if isinstance(node.get("items"), dict):
        yield f"{path}[]", node["items"]
    if isinstance(node.get("additionalProperties"), dict):
        yield f"{path}{{}}", node["additionalProperties"]


def unbounded(node: Schema, path: str) -> Iterator[str]:
    """Paths of typed nodes without a bound (free-form objects are the API server's to check)."""
    problem = _missing_bound(node)
    if problem is not None:
        yield f"{path}: {problem}"
    for child_path, child in _children(node, path):
        yield from unbounded(child, child_path)


def _missing_bound(node: Schema) -> str | None:
    """The bound that a node of its type needs and lacks (a node has one type: one at most)."""
    kind = node.get("type")
    if kind == "string" and _free_string(node):
        return "string without maxLength"
    if kind == "array" and "maxItems" not in node:
        return "list without maxItems"
    if kind == "object" and _free_map(node):
        return "map without maxProperties"
    if kind in ("integer", "number") and "maximum" not in node:
        return "number without maximum"
    return None


def _free_string(node: Schema) -> bool:
    """No maxLength, and no enum or date-time format that bounds it instead."""
    return "maxLength" not in node and "enum" not in node and node.get("format") != "date-time"


def _free_map(node: Schema) -> bool:
    return "additionalProperties" in node and "maxProperties" not in node


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_spec_field_is_bounded(resource: Any) -> None:
    spec = object_schema(resource)["properties"]["spec"]
    assert list(unbounded(spec, "spec")) == []


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_condition_messages_are_bounded_in_status(resource: Any) -> None:
    status = object_schema(resource)["properties"]["status"]
    condition = status["properties"]["conditions"]["items"]
    assert condition["properties"]["message"]["maxLength"] == MESSAGE_LENGTH
    assert "maxItems" in status["properties"]["conditions"]


def _service(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 10,
        "metrics": [{"name": "rps", "query": "sum(rate(x[1m]))", "targetPerReplica": 5}],
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize("changes", [
    pytest.param({"maxReplicas": 10**9}, id="max-replicas"),
    pytest.param({"scaleTargetRef": {"name": "Web_App"}}, id="target-name-not-dns-1123"),
    pytest.param({"scaleTargetRef": {"name": "a" * 254}}, id="target-name-too-long"),
    pytest.param({"scaleTargetRef": {"name": "web", "kind": "deployment; rm"}},
                 id="kind-not-camel-case"),
    pytest.param({"scaleTargetRef": {"name": "web", "apiVersion": "apps/v1/../x"}},
                 id="api-version-malformed"),
    pytest.param({"metrics": [{"name": "rps", "query": "x" * 5000, "targetPerReplica": 5}]},
                 id="query-too-long"),
    pytest.param({"metrics": [{"name": f"m{i}", "query": "x", "targetPerReplica": 5}
                              for i in range(17)]}, id="too-many-metrics"),
    pytest.param({"predictive": {"historySeconds": 10**12}}, id="history-seconds"),
    pytest.param({"predictive": {"lookAheadSeconds": 400}, "syncPeriodSeconds": 1},
                 id="look-ahead-over-its-rows"),
    pytest.param({"healing": {"metrics": {"x" * 64: "up"}}}, id="health-metric-name-too-long"),
    pytest.param({"healing": {"metrics": {f"m{i}": "up" for i in range(17)}}},
                 id="too-many-health-metrics"),
    pytest.param({"prometheus": {"url": "http://" + "a" * 3000}}, id="url-too-long"),
])
def test_the_model_refuses_out_of_bounds_services(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        adaptive_service.AdaptiveServiceSpec.model_validate(_service(**changes))


def test_a_service_at_the_bounds_is_accepted() -> None:
    adaptive_service.AdaptiveServiceSpec.model_validate(_service(
        maxReplicas=100_000, scaleTargetRef={"name": "a" * 63 + ".b", "kind": "Deployment"},
        predictive={"lookAheadSeconds": 360, "historySeconds": 90 * 86400},
        syncPeriodSeconds=1))


def _shard_set(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"shards": 2, "template": {"template": {}},
                            "migration": {"jobTemplate": {}}}
    spec.update(changes)
    return spec


@pytest.mark.parametrize("changes", [
    pytest.param({"shards": 2000}, id="shards"),
    pytest.param({"template": {"template": {}, "replicas": 10**6}}, id="replicas-per-shard"),
    pytest.param({"migration": {"jobTemplate": {}, "concurrency": 10**6}}, id="concurrency"),
    pytest.param({"slots": 1 << 21}, id="slots"),
])
def test_the_model_refuses_out_of_bounds_shard_sets(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        shard_set.ShardSetSpec.model_validate(_shard_set(**changes))


def test_a_message_is_truncated_and_says_so() -> None:
    long = "q" * 1_000_000
    cut = truncated(long)
    assert len(cut) <= MESSAGE_LENGTH and cut.endswith("characters cut)")
    assert truncated("short") == "short"


def test_a_huge_message_is_cut_in_every_condition() -> None:
    """A 1 MB query quoted in a condition must not be repeated whole in status."""
    from adaptive_operator.domain.common.conditions import (
        Condition,
        merge_conditions,
        replace_conditions,
    )

    huge = "sum(rate(x[1m])) " * 60_000
    condition = Condition("Ready", "False", "BadQuery", huge)
    merged = merge_conditions([], [condition], 0.0, 1)
    shard = replace_conditions([], [condition], 0.0, 1)
    assert all(len(c["message"]) <= MESSAGE_LENGTH for c in [*merged, *shard])


def test_a_long_history_is_not_allocated_up_front() -> None:
    """historySeconds of months at a 1 s sync must not take gigabytes before any row arrives;
    the ring grows as rows come and still keeps exactly the last `capacity` rows."""
    from adaptive_operator.domain.scaling.forecast_history import MetricHistory

    assert MetricHistory(0.0, 1.0, 10**9).nbytes() <= 1024 * 8
    history = MetricHistory(0.0, 1.0, 3000)
    for row in range(7000):
        history.append(float(row))
    assert history.nbytes() == 3000 * 8
    assert [history.value(r) for r in (4000, 5500, 6999)] == [4000.0, 5500.0, 6999.0]
    with pytest.raises(IndexError):
        history.value(3999)


def unbounded_lists(node: Schema, path: str) -> Iterator[str]:
    """Lists without maxItems and maps without maxProperties, anywhere under `node`."""
    return (problem for problem in unbounded(node, path)
            if problem.endswith(("list without maxItems", "map without maxProperties")))


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_list_in_status_is_bounded(resource: Any) -> None:
    status = object_schema(resource)["properties"]["status"]
    assert list(unbounded_lists(status, "status")) == []


def test_the_scaling_history_in_status_keeps_only_the_newest_records() -> None:
    """An hour's stabilization window at a 1 s sync: status keeps the newest records only."""
    from adaptive_operator.api.base import MAX_HISTORY_RECORDS, MAX_OVERRIDES
    from adaptive_operator.domain.scaling.algorithm import (
        Recommendation,
        ScaleEvent,
        ScalingHistory,
    )
    from adaptive_operator.domain.scaling.config import history_to_status
    from adaptive_operator.domain.scaling.writes import WriteRecord, record_to_status

    history = ScalingHistory(tuple(Recommendation(float(t), t % 7) for t in range(3600)),
                             tuple(ScaleEvent(float(t), 1) for t in range(1800)))
    written = history_to_status(history)
    assert len(written.recommendations) == len(written.scale_events) == MAX_HISTORY_RECORDS
    assert written.recommendations[-1].time.timestamp() == 3599.0
    assert written.scale_events[-1].time.timestamp() == 1799.0
    overrides = record_to_status(WriteRecord(overrides=tuple(float(t) for t in range(500))))
    assert len(overrides.overridden_at) == MAX_OVERRIDES
    assert overrides.overridden_at[-1].timestamp() == 499.0
