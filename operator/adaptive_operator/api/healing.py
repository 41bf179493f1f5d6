"""The `healing` block of an AdaptiveService spec, and the healing part of its status."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

from adaptive_operator.api.base import (
    MAX_CONDITIONS,
    MAX_METRICS,
    MAX_OUTCOMES,
    MAX_PERIOD_SECONDS,
    MAX_QUERY_LENGTH,
    MAX_REPLICAS,
    NAME_LENGTH,
    Condition,
    KubeModel,
    StatusName,
    StatusText,
)

# Scoped to the target: its namespace and its own pods ({{pods}}: a regex of their names).
_OWN = 'namespace="{{namespace}}",pod=~"{{pods}}"'
DEFAULT_METRICS: dict[str, str] = {
    "errorRatio": (
        f'sum(rate(http_requests_total{{{_OWN},code=~"5.."}}[5m])) / '
        f"sum(rate(http_requests_total{{{_OWN}}}[5m]))"
    ),
    "latencyP99": (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{_OWN}}}[5m])))"
    ),
    # Per container, not summed: a scale-out or a rollout's surge is not an anomaly.
    "cpu": f'avg(rate(container_cpu_usage_seconds_total{{{_OWN},container!=""}}[5m]))',
    "memory": f'avg(container_memory_working_set_bytes{{{_OWN},container!=""}})',
    "restarts": f"sum(increase(kube_pod_container_status_restarts_total{{{_OWN}}}[5m]))",
}


# The detector's first fit: the product's default training rows, and the bounds a spec may set
# (30 give the 0.99 quantile of the training scores a footing; 2,000 is its training window).
DEFAULT_MIN_TRAINING_ROWS = 100
MIN_TRAINING_ROWS = 30
MAX_TRAINING_ROWS = 2000


class MetricRole(StrEnum):
    """What a health metric measures; saturation reads the `latency` and `cpu` ones."""

    ERRORS = "errors"
    LATENCY = "latency"
    CPU = "cpu"
    MEMORY = "memory"
    RESTARTS = "restarts"
    OTHER = "other"


# The role of a metric named like a default one, when `roles` does not say (exact names only).
DEFAULT_ROLES: dict[str, MetricRole] = {
    "errorRatio": MetricRole.ERRORS, "latencyP99": MetricRole.LATENCY, "cpu": MetricRole.CPU,
    "memory": MetricRole.MEMORY, "restarts": MetricRole.RESTARTS,
}


class HealingMode(StrEnum):
    ACTIVE = "Active"
    DRY_RUN = "DryRun"


PERSISTENCE_RULE = {
    "rule": "!has(self.k) || !has(self.n) || self.k <= self.n",
    "message": "persistence k must be less than or equal to n",
}


ROLES_RULE = {"rule": "!has(self.roles) || !has(self.metrics) || "
                      "self.roles.all(k, k in self.metrics)",
              "message": "every key of roles must name one of the metrics"}


class Persistence(KubeModel):
    """An anomaly counts when k of the last n scored points are anomalous."""

    # The API server refuses k > n too (CEL), so `kubectl apply` says so, not the operator.
    model_config = KubeModel.model_config | ConfigDict(
        json_schema_extra=cast(JsonDict, {"x-kubernetes-validations": [PERSISTENCE_RULE]})
    )

    k: int = Field(default=2, ge=1, le=100, description="Anomalous points needed (at most n).")
    n: int = Field(default=3, ge=1, le=100, description="Points looked at.")

    @model_validator(mode="after")
    def _k_within_n(self) -> Persistence:
        if self.k > self.n:
            raise ValueError(f"{PERSISTENCE_RULE['message']} (k={self.k}, n={self.n})")
        return self


METRIC_NAMES_RULE = {
    "rule": f"self.all(k, size(k) >= 1 && size(k) <= {NAME_LENGTH})",
    "message": f"health metric names must be 1 to {NAME_LENGTH} characters",
}


MetricName = Annotated[str, StringConstraints(min_length=1, max_length=NAME_LENGTH)]
Query = Annotated[str, StringConstraints(max_length=MAX_QUERY_LENGTH)]


def _bounded_names(schema: dict[str, Any]) -> None:
    """Map keys are bounded by CEL: a structural schema has no `propertyNames`."""
    schema.pop("propertyNames", None)
    schema["x-kubernetes-validations"] = [METRIC_NAMES_RULE]


class HealingSpec(KubeModel):
    """Self-healing: an IsolationForest over health metrics, and remedies within rails."""

    model_config = KubeModel.model_config | ConfigDict(json_schema_extra=cast(JsonDict, {
        "x-kubernetes-validations": [ROLES_RULE]}))

    enabled: bool = Field(default=False, description="Watch and heal the workload.")
    mode: HealingMode = Field(
        default=HealingMode.ACTIVE,
        description="Active acts; DryRun only reports what it would do (Events, status).")
    metrics: dict[MetricName, Query] = Field(
        default_factory=lambda: dict(DEFAULT_METRICS),
        max_length=MAX_METRICS,
        json_schema_extra=_bounded_names,
        description="Health metrics: name -> PromQL giving one number for the workload "
        "(default: errorRatio, latencyP99, cpu, memory, restarts, each scoped to the "
        "target's namespace and pods). Placeholders: {{namespace}}, {{name}} (the target) and "
        "{{pods}} (a regex of the target's pod names, for pod=~\"{{pods}}\").")
    roles: dict[MetricName, MetricRole] = Field(
        default_factory=dict, max_length=MAX_METRICS, json_schema_extra=_bounded_names,
        description="What each health metric measures (errors, latency, cpu, memory, restarts, "
        "other): saturation reads latency and cpu. A metric named like a default one "
        "(errorRatio, latencyP99, cpu, memory, restarts) takes its role unless given here; any "
        "other has none.")
    sensitivity: float = Field(
        default=0.5, gt=0.0, le=1.0,
        description="Higher flags more points as anomalous; 0.5 is the detector's default "
        "operating point.")
    persistence: Persistence = Field(
        default_factory=Persistence, description="How many anomalous points make an anomaly.")
    rollback_window_seconds: int = Field(
        default=600, ge=0, le=MAX_PERIOD_SECONDS, alias="rollbackWindowSeconds",
        description="An anomaly starting this long after a rollout rolls it back.")
    cooldown_seconds: int = Field(
        default=300, ge=0, le=MAX_PERIOD_SECONDS, alias="cooldownSeconds",
        description="No repeat of the same action within this time.")
    max_actions_per_hour: int = Field(
        default=4, ge=0, le=60, alias="maxActionsPerHour", description="Actions allowed per hour.")
    max_unavailable_pods: int = Field(
        default=1, ge=1, le=MAX_REPLICAS, alias="maxUnavailablePods",
        description="Pods evicted at once at most.")
    verify_seconds: int = Field(
        default=120, ge=1, le=MAX_PERIOD_SECONDS, alias="verifySeconds",
        description="How long after an action its outcome (Helped, DidNotHelp) is judged.")
    min_training_rows: int = Field(
        default=DEFAULT_MIN_TRAINING_ROWS, ge=MIN_TRAINING_ROWS, le=MAX_TRAINING_ROWS,
        alias="minTrainingRows",
        description="History rows (one per sync) the detector trains on before its first "
        "verdict, after a warm-up of 20: fewer start sooner on a coarser threshold.")

    @model_validator(mode="after")
    def _roles_name_metrics(self) -> HealingSpec:
        unknown = sorted(set(self.roles) - set(self.metrics))
        if unknown:
            raise ValueError(f"{ROLES_RULE['message']} ({unknown[0]} is not)")
        return self

    def role_of(self, metric: str) -> MetricRole | None:
        return self.roles.get(metric) or DEFAULT_ROLES.get(metric)

    def roles_by_name(self) -> dict[str, str]:
        """Each metric's role, for the metrics that have one."""
        return {name: str(role) for name in self.metrics
                if (role := self.role_of(name)) is not None}


class ContributionStatus(KubeModel):
    """How far one metric is from what the detector learned."""

    metric: StatusName = Field(description="The health metric's name.")
    value: float = Field(description="Its latest value.")
    baseline: float = Field(description="Its median over the training window.")
    z: float = Field(description="Robust z-score of the value against the baseline.")


class VerdictStatus(KubeModel):
    """The detector's last verdict."""

    score: float = Field(ge=0.0, le=1.0, description="Anomaly score, 1 most anomalous.")
    is_anomaly: bool = Field(alias="isAnomaly",
                             description="Anomalous after the persistence rule.")
    contributions: list[ContributionStatus] = Field(
        default_factory=list, max_length=MAX_METRICS,
        description="The metrics furthest from their baseline.")
    time: StatusName | None = Field(default=None, description="When it was scored.")


class ActionStatus(KubeModel):
    """The last healing action, recorded before it was carried out."""

    id: StatusName = Field(description="Identifier of the intent in the ledger.")
    action: StatusName = Field(description="RollBack, EvictPods, RolloutRestart or ScaleOut.")
    reason: StatusName = Field(description="Why: AnomalyAfterRollout, UnhealthyPods, "
                               "EscalatedToRestart or Saturation.")
    message: StatusText = Field(description="Explanation, with the numbers.")
    outcome: StatusName = Field(description="Pending, Helped, DidNotHelp or DryRun.")
    time: StatusName = Field(description="When it was decided.")


class LedgerSummaryStatus(KubeModel):
    """Counts of the healing ledger (kept in an annotation)."""

    total: int = Field(default=0, description="Actions recorded.")
    last_hour: int = Field(default=0, alias="lastHour", description="Actions in the last hour.")
    by_outcome: dict[str, int] = Field(default_factory=dict, alias="byOutcome",
                                       max_length=MAX_OUTCOMES,
                                       description="Actions per outcome.")


class PlanStatus(KubeModel):
    """What healing decided at its last sync and why (e.g. MetricsUnreadable: not acting on data
    that could not be read)."""

    reason: StatusName = Field(description="CamelCase reason, e.g. MetricsUnreadable.")
    message: StatusText = Field(description="What was decided and why, for people.")
    time: StatusName | None = Field(default=None, description="When it was decided.")


class HealingStatus(KubeModel):
    """What self-healing saw and did."""

    state: PlanStatus | None = Field(
        default=None, description="What healing decided at its last sync and why.")
    last_verdict: VerdictStatus | None = Field(
        default=None, alias="lastVerdict", description="The detector's last verdict.")
    last_action: ActionStatus | None = Field(
        default=None, alias="lastAction", description="The last action and its outcome.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS,
        description="PodsNotOwned: True when the last eviction left pods alone because they "
        "are not shown to be the target's (named, a few of them).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    ledger: LedgerSummaryStatus = Field(
        default_factory=LedgerSummaryStatus, description="Counts of past actions.")
