"""The ShardSet resource (`adaptive.dev/v1alpha1`): pydantic models, the source of its CRD schema.

Free-form Kubernetes objects (the pod template, volume claim templates, the migration Job spec)
are kept as plain mappings marked ``x-kubernetes-preserve-unknown-fields``: the API server
validates them when the operator creates the real objects.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from adaptive_operator.api.base import (
    AGE,
    MAX_CONDITIONS,
    MAX_PERIOD_SECONDS,
    MAX_QUERY_LENGTH,
    NAME_LENGTH,
    Condition,
    KubeModel,
    PrinterColumn,
    ResourceDefinition,
)

KIND = "ShardSet"
PLURAL = "shardsets"
SHORT_NAMES = ("shs",)
DEFAULT_SLOTS = 16384  # as in Redis Cluster
MAX_SLOTS = 1 << 20  # the routing table keeps one owner per slot
MAX_SHARDS = 1024  # each shard is a StatefulSet and a Service
MAX_SHARD_REPLICAS = 1000
MAX_CONCURRENCY = 64  # migration Jobs at once

# CEL rules for rules that span fields (x-kubernetes-validations), keyed by the schema object
# they sit on. The pydantic validators below enforce the same rules for Python callers.
SPEC_SHARDS_WITHIN_SLOTS_RULE = {
    "rule": "self.shards <= self.slots",
    "message": "shards must not exceed slots: every shard needs at least one slot",
}
# A transition rule: the routing table and every client hash modulo the slot count.
SPEC_SLOTS_IMMUTABLE_RULE = {
    "rule": "self.slots == oldSelf.slots",
    "message": "slots cannot change once the ShardSet exists",
}
REBALANCE_HYSTERESIS_RULE = {
    "rule": "!has(self.hysteresis) || self.hysteresis <= self.imbalanceThreshold",
    "message": "hysteresis must not exceed imbalanceThreshold",
}
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "spec": [SPEC_SHARDS_WITHIN_SLOTS_RULE, SPEC_SLOTS_IMMUTABLE_RULE],
    "spec.rebalance": [REBALANCE_HYSTERESIS_RULE],
}


def _free_form(schema: dict[str, Any]) -> None:
    """Any object goes: the API server keeps unknown fields (no `additionalProperties: true`,
    which a structural schema does not need)."""
    schema.pop("additionalProperties", None)
    schema["x-kubernetes-preserve-unknown-fields"] = True


def _free_form_items(schema: dict[str, Any]) -> None:
    schema["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _open(description: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object that keeps unknown fields; `properties` types the few the operator reads."""
    node: dict[str, Any] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": description,
    }
    if properties:
        node["properties"] = properties
    return node


# The few fields of the free-form templates the operator itself reads or writes are typed, so
# the API server refuses e.g. `metadata: 0` at `kubectl apply`, naming the field, instead of
# the operator failing on it later; everything else stays free-form.
LABELS = {
    "type": "object",
    "maxProperties": 64,
    "additionalProperties": {"type": "string", "maxLength": NAME_LENGTH},
    "description": "Pod labels; the operator adds the shard's own.",
}
POD_TEMPLATE_SKELETON = {
    "metadata": _open("Pod metadata.", {"labels": LABELS}),
    "spec": _open("Pod spec, passed through as written."),
}
CONTAINER = _open(
    "A container of the migration Job.",
    {
        "env": {
            "type": "array",
            "maxItems": 256,
            "items": _open("An env var."),
            "description": "Env vars; the operator adds SHARD_RANGE_START/END, SOURCE, TARGET.",
        }
    },
)
JOB_SPEC_SKELETON = {
    "template": _open(
        "The Job's pod template.",
        {
            "spec": _open(
                "Pod spec.",
                {
                    "containers": {
                        "type": "array",
                        "maxItems": 16,
                        "items": CONTAINER,
                        "description": "The Job's containers.",
                    }
                },
            )
        },
    ),
}


def _pod_template(schema: dict[str, Any]) -> None:
    _free_form(schema)
    schema["properties"] = POD_TEMPLATE_SKELETON


def _job_spec(schema: dict[str, Any]) -> None:
    _free_form(schema)
    schema["properties"] = JOB_SPEC_SKELETON


def _with_rules(rules: list[dict[str, str]]) -> ConfigDict:
    """The shared model config plus CEL rules carried in the JSON schema."""
    return KubeModel.model_config | {
        "json_schema_extra": cast(JsonDict, {"x-kubernetes-validations": rules})
    }


class ShardTemplate(KubeModel):
    """What each shard's StatefulSet looks like: a subset of the StatefulSet spec."""

    replicas: int = Field(1, ge=0, le=MAX_SHARD_REPLICAS, description="Pods per shard.")
    template: dict[str, Any] = Field(
        description="Pod template of each shard's StatefulSet.", json_schema_extra=_pod_template
    )
    volume_claim_templates: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=16,
        description="Volume claim templates of each shard's StatefulSet.",
        json_schema_extra=_free_form_items,
    )


class Migration(KubeModel):
    """How slot ranges are moved: the user's Job, given SHARD_RANGE_START/END, SOURCE, TARGET."""

    job_template: dict[str, Any] = Field(
        description="Job spec run once per moved range.", json_schema_extra=_job_spec
    )
    concurrency: int = Field(1, ge=1, le=MAX_CONCURRENCY,
                             description="Migration Jobs running at most at once.")
    backoff_limit: int = Field(3, ge=0, le=100, description="Retries of a failed migration Job.")
    backoff_seconds: float = Field(
        10.0, gt=0, le=3600, description="Delay before the first retry; it doubles at each retry."
    )


class Rebalance(KubeModel):
    """Load-aware rebalancing: slots move from hot shards to cold ones."""

    model_config = _with_rules([REBALANCE_HYSTERESIS_RULE])

    load_query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_LENGTH,
        description="PromQL giving each shard's load: one series per shard, labelled `shard` "
        "with the shard number (or a name ending in it, such as the StatefulSet's).",
    )
    imbalance_threshold: float = Field(
        0.2, ge=0, le=100,
        description="Rebalance when the hottest shard exceeds the mean load by this."
    )
    hysteresis: float = Field(
        0.05, ge=0, le=100, description="Once rebalancing, continue down to threshold minus this."
    )
    max_moves_per_period: int = Field(1024, ge=0, le=MAX_SLOTS,
                                      description="Slots moved per period at most.")
    period_seconds: int = Field(300, ge=1, le=MAX_PERIOD_SECONDS,
                                description="How often the load is checked.")

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> Rebalance:
        if self.hysteresis > self.imbalance_threshold:
            raise ValueError(REBALANCE_HYSTERESIS_RULE["message"])
        return self


class ShardSetSpec(KubeModel):
    model_config = _with_rules(CEL_RULES["spec"])

    shards: int = Field(ge=1, le=MAX_SHARDS, description="Number of shards.")
    slots: int = Field(DEFAULT_SLOTS, ge=1, le=MAX_SLOTS, description="Number of hash slots.")
    template: ShardTemplate = Field(description="Each shard's StatefulSet.")
    migration: Migration = Field(description="How slot ranges are moved between shards.")
    rebalance: Rebalance | None = Field(
        default=None, description="Load-aware rebalancing (off when absent)."
    )

    @model_validator(mode="after")
    def _shards_within_slots(self) -> ShardSetSpec:
        if self.shards > self.slots:
            raise ValueError(SPEC_SHARDS_WITHIN_SLOTS_RULE["message"])
        return self


class ShardSetStatus(KubeModel):
    shards: int = Field(default=0, description="Shards in the published routing table.")
    ready_shards: int = Field(default=0, description="Shards whose pods are all ready.")
    migrations_in_flight: int = Field(default=0, description="Migration Jobs running.")
    epoch: int = Field(
        default=0, description="Epoch of the routing table; it grows with every published change."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the status was written for."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description="Ready (the summary), Resharding (slots are moving) and "
        "Degraded (a migration gave up).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ShardSet(KubeModel):
    api_version: Literal["adaptive.dev/v1alpha1"] = "adaptive.dev/v1alpha1"
    kind: Literal["ShardSet"] = "ShardSet"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ShardSetSpec
    status: ShardSetStatus | None = None


RESOURCE = ResourceDefinition(
    kind=KIND,
    plural=PLURAL,
    spec_model=ShardSetSpec,
    status_model=ShardSetStatus,
    short_names=SHORT_NAMES,
    description="Runs a sharded stateful workload: a StatefulSet per shard, a hash-slot routing "
    "table in a ConfigMap, and minimal-movement resharding carried out by migration Jobs.",
    printer_columns=(
        PrinterColumn("Shards", "integer", ".spec.shards", "Shards asked for."),
        PrinterColumn("Ready", "integer", ".status.readyShards", "Shards whose pods are ready."),
        PrinterColumn(
            "Migrating", "integer", ".status.migrationsInFlight", "Migration Jobs running."
        ),
        PrinterColumn("Epoch", "integer", ".status.epoch", "Epoch of the routing table."),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp", AGE),
    ),
)
