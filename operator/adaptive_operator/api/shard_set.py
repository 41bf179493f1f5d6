"""The ShardSet resource (`adaptive.dev/v1alpha1`): pydantic models, the source of its CRD schema.

Free-form Kubernetes objects (the pod template, volume claim templates, the migration Job spec)
are kept as plain mappings marked ``x-kubernetes-preserve-unknown-fields``: the API server
validates them when the operator creates the real objects.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "adaptive.dev"
VERSION = "v1alpha1"
KIND = "ShardSet"
PLURAL = "shardsets"
SINGULAR = "shardset"
SHORT_NAMES = ("shs",)
DEFAULT_SLOTS = 16384  # as in Redis Cluster

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

PRINTER_COLUMNS: tuple[dict[str, str], ...] = (
    {"name": "Shards", "type": "integer", "jsonPath": ".spec.shards"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyShards"},
    {"name": "Migrating", "type": "integer", "jsonPath": ".status.migrationsInFlight"},
    {"name": "Epoch", "type": "integer", "jsonPath": ".status.epoch"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

def _free_form(schema: dict[str, Any]) -> None:
    """Any object goes: the API server keeps unknown fields (no `additionalProperties: true`,
    which a structural schema does not need)."""
    schema.pop("additionalProperties", None)
    schema["x-kubernetes-preserve-unknown-fields"] = True


def _free_form_items(schema: dict[str, Any]) -> None:
    schema["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _config(x_validations: list[dict[str, str]] | None = None) -> ConfigDict:
    """camelCase on the wire, unknown fields refused; CEL rules carried in the JSON schema."""
    config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    if x_validations:
        config["json_schema_extra"] = cast(JsonDict, {"x-kubernetes-validations": x_validations})
    return config


class _Model(BaseModel):
    model_config = _config()


class ShardTemplate(_Model):
    """What each shard's StatefulSet looks like: a subset of the StatefulSet spec."""

    replicas: int = Field(1, ge=0, description="Pods per shard.")
    template: dict[str, Any] = Field(
        description="Pod template of each shard's StatefulSet.", json_schema_extra=_free_form
    )
    volume_claim_templates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Volume claim templates of each shard's StatefulSet.",
        json_schema_extra=_free_form_items,
    )


class Migration(_Model):
    """How slot ranges are moved: the user's Job, given SHARD_RANGE_START/END, SOURCE, TARGET."""

    job_template: dict[str, Any] = Field(
        description="Job spec run once per moved range.", json_schema_extra=_free_form
    )
    concurrency: int = Field(1, ge=1, description="Migration Jobs running at most at once.")
    backoff_limit: int = Field(3, ge=0, description="Retries of a failed migration Job.")
    backoff_seconds: float = Field(
        10.0, gt=0, description="Delay before the first retry; it doubles at each retry."
    )


class Rebalance(_Model):
    """Load-aware rebalancing: slots move from hot shards to cold ones."""

    model_config = _config(x_validations=[REBALANCE_HYSTERESIS_RULE])

    load_query: str = Field(
        min_length=1,
        description="PromQL giving each shard's load: one series per shard, labelled `shard` "
        "with the shard number (or a name ending in it, such as the StatefulSet's).",
    )
    imbalance_threshold: float = Field(
        0.2, ge=0, description="Rebalance when the hottest shard exceeds the mean load by this."
    )
    hysteresis: float = Field(
        0.05, ge=0, description="Once rebalancing, continue down to threshold minus this."
    )
    max_moves_per_period: int = Field(1024, ge=0, description="Slots moved per period at most.")
    period_seconds: int = Field(300, ge=1, description="How often the load is checked.")

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> Rebalance:
        if self.hysteresis > self.imbalance_threshold:
            raise ValueError(REBALANCE_HYSTERESIS_RULE["message"])
        return self


class ShardSetSpec(_Model):
    model_config = _config(x_validations=CEL_RULES["spec"])

    shards: int = Field(ge=1, description="Number of shards.")
    slots: int = Field(DEFAULT_SLOTS, ge=1, le=1 << 20, description="Number of hash slots.")
    template: ShardTemplate
    migration: Migration
    rebalance: Rebalance | None = None

    @model_validator(mode="after")
    def _shards_within_slots(self) -> ShardSetSpec:
        if self.shards > self.slots:
            raise ValueError(SPEC_SHARDS_WITHIN_SLOTS_RULE["message"])
        return self


class Condition(_Model):
    """A condition as the Kubernetes API conventions describe it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class ShardSetStatus(_Model):
    shards: int = 0
    ready_shards: int = 0
    migrations_in_flight: int = 0
    epoch: int = 0
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ShardSet(_Model):
    api_version: Literal["adaptive.dev/v1alpha1"] = "adaptive.dev/v1alpha1"
    kind: Literal["ShardSet"] = "ShardSet"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ShardSetSpec
    status: ShardSetStatus | None = None
