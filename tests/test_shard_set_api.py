"""The ShardSet models: camelCase on the wire, defaults, and the rules that span fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adaptive_operator.api.shard_set import (
    CEL_RULES,
    DEFAULT_SLOTS,
    REBALANCE_HYSTERESIS_RULE,
    ShardSet,
    ShardSetStatus,
)


def manifest(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "shards": 3,
        "template": {"replicas": 2, "template": {"spec": {"containers": [{"name": "redis"}]}}},
        "migration": {"jobTemplate": {"template": {"spec": {"restartPolicy": "Never"}}}},
    }
    return {"apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "spec": base | spec}


def test_defaults_and_camel_case_round_trip() -> None:
    shard_set = ShardSet.model_validate(manifest(rebalance={"loadQuery": "sum by (shard) (x)"}))
    assert shard_set.spec.slots == DEFAULT_SLOTS
    assert shard_set.spec.migration.concurrency == 1
    dumped = shard_set.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["rebalance"]["maxMovesPerPeriod"] == 1024
    assert dumped["spec"]["template"]["volumeClaimTemplates"] == []
    assert ShardSet.model_validate(dumped) == shard_set


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"shards": 0}, id="no-shards"),
        pytest.param({"shards": 5, "slots": 4}, id="more-shards-than-slots"),
        pytest.param({"rebalance": {"loadQuery": "x", "imbalanceThreshold": 0.1,
                                    "hysteresis": 0.2}}, id="hysteresis-above-threshold"),
        pytest.param({"rebalance": {"loadQuery": ""}}, id="empty-load-query"),
        pytest.param({"replicas": 3}, id="unknown-field"),
    ],
)
def test_invalid_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ShardSet.model_validate(manifest(**spec))


def test_free_form_objects_preserve_unknown_fields_in_the_schema() -> None:
    schema = ShardSet.model_json_schema(by_alias=True)
    template = schema["$defs"]["ShardTemplate"]["properties"]
    assert template["template"]["x-kubernetes-preserve-unknown-fields"] is True
    assert template["volumeClaimTemplates"]["items"]["x-kubernetes-preserve-unknown-fields"]
    job = schema["$defs"]["Migration"]["properties"]["jobTemplate"]
    assert job["x-kubernetes-preserve-unknown-fields"] is True


def test_cel_rules_name_real_fields() -> None:
    assert REBALANCE_HYSTERESIS_RULE in CEL_RULES["spec.rebalance"]
    schema = ShardSet.model_json_schema(by_alias=True)
    rebalance = schema["$defs"]["Rebalance"]["properties"]
    assert {"hysteresis", "imbalanceThreshold"} <= set(rebalance)


def test_status_conditions_follow_api_conventions() -> None:
    status = ShardSetStatus.model_validate(
        {
            "shards": 3,
            "readyShards": 2,
            "conditions": [{"type": "Ready", "status": "False", "reason": "ShardsNotReady",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }
    )
    assert status.conditions[0].reason == "ShardsNotReady"
    with pytest.raises(ValidationError):
        ShardSetStatus.model_validate(
            {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "X",
                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        )


def test_cel_rules_travel_in_the_json_schema() -> None:
    defs = ShardSet.model_json_schema(by_alias=True)["$defs"]
    assert defs["ShardSetSpec"]["x-kubernetes-validations"] == CEL_RULES["spec"]
    assert defs["Rebalance"]["x-kubernetes-validations"] == CEL_RULES["spec.rebalance"]
    assert "x-kubernetes-validations" not in defs["Migration"]


def test_free_form_objects_have_no_additional_properties_keyword() -> None:
    defs = ShardSet.model_json_schema(by_alias=True)["$defs"]
    assert "additionalProperties" not in defs["ShardTemplate"]["properties"]["template"]
    assert "additionalProperties" not in defs["Migration"]["properties"]["jobTemplate"]


def test_shard_set_is_registered_with_printer_columns() -> None:
    from adaptive_operator.api.crd import RESOURCES, build_crd
    from adaptive_operator.api.shard_set import RESOURCE

    assert RESOURCE in RESOURCES
    version = build_crd(RESOURCE)["spec"]["versions"][0]
    assert [c["jsonPath"] for c in version["additionalPrinterColumns"]] == [
        ".spec.shards", ".status.readyShards", ".status.migrationsInFlight", ".status.epoch",
        ".metadata.creationTimestamp",
    ]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == CEL_RULES["spec"]
    assert spec["properties"]["rebalance"]["x-kubernetes-validations"] == CEL_RULES[
        "spec.rebalance"]
