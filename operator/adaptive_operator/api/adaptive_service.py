"""The AdaptiveService resource (adaptive.dev/v1alpha1): spec and status models.

Field names and defaults follow HorizontalPodAutoscaler v2 so that users recognise them. The
optional `predictive`, `healing` and `coupling` blocks have their own modules beside this one;
the CRD generator picks up whatever these models declare.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from adaptive_operator.api.base import (
    AGE,
    API_VERSION,
    CAMEL_CASE,
    DNS_SUBDOMAIN,
    MAX_CONDITIONS,
    MAX_HISTORY_RECORDS,
    MAX_LOOK_AHEAD_ROWS,
    MAX_METRICS,
    MAX_OVERRIDES,
    MAX_QUERY_LENGTH,
    MAX_REPLICAS,
    NAME_LENGTH,
    SUBDOMAIN_LENGTH,
    Condition,
    KubeModel,
    PrinterColumn,
    ResourceDefinition,
    StatusName,
    StatusText,
)
from adaptive_operator.api.coupling import MAX_UPSTREAMS, CouplingSpec, CouplingStatus
from adaptive_operator.api.healing import HealingSpec, HealingStatus
from adaptive_operator.api.predictive import PredictiveSpec, PredictiveStatus
from adaptive_operator.api.prometheus_ref import PrometheusRef

KIND = "AdaptiveService"
PLURAL = "adaptiveservices"

Mode = Literal["Active", "DryRun", "Paused"]

# The condition types of issue 3; `Ready` is the summary (Kubernetes API conventions).
CONDITION_TYPES: tuple[str, ...] = ("Ready", "MetricsAvailable", "ScalingActive", "ScalingLimited")


class ScaleTargetRef(KubeModel):
    """The workload to scale; it must have a /scale subresource."""

    api_version: str = Field(default="apps/v1", min_length=1, max_length=SUBDOMAIN_LENGTH + 64,
                             pattern=API_VERSION, description="API group/version of the workload.")
    kind: str = Field(default="Deployment", min_length=1, max_length=NAME_LENGTH,
                      pattern=CAMEL_CASE, description="Kind of the workload.")
    name: str = Field(min_length=1, max_length=SUBDOMAIN_LENGTH, pattern=DNS_SUBDOMAIN,
                      description="Name of the workload, in the service's "
                      "namespace.")


class MetricSpec(KubeModel):
    """A PromQL query for the workload's total and the share of it one replica should carry."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH,
                      pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$",
                      description="Name of the metric in status, Events, logs and /metrics.")
    query: str = Field(min_length=1, max_length=MAX_QUERY_LENGTH,
                       description="PromQL returning the workload's total load "
                       "as one series (wrap it in sum(...)).")
    target_per_replica: float = Field(gt=0, le=1e15, description="Load one replica should "
                                      "carry.")


class ScalingPolicy(KubeModel):
    """HPA v2 HPAScalingPolicy: how much the replicas may change within a period."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: a number of pods; Percent: a percentage of the current replicas.")
    value: int = Field(ge=1, le=MAX_REPLICAS, description="Pods or percent allowed per period.")
    period_seconds: int = Field(ge=1, le=1800,
                                description="Window over which the change is counted.")


class ScalingRules(KubeModel):
    """HPA v2 HPAScalingRules; fields left out take HPA's defaults for the direction."""

    stabilization_window_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Default: 0 for scale-up, 300 for scale-down."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None, description="Default: Max."
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Default: up max(4 pods, 100%) per 15 s; down 100% per 15 s.",
    )


class Behavior(KubeModel):
    """HPA v2 behavior: stabilization and rate limits per direction."""

    scale_up: ScalingRules | None = Field(default=None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(default=None, description="Rules for scaling down.")


# The forecast keeps buffers per look-ahead row: the look-ahead over the period bounds them.
LOOK_AHEAD_ROWS_RULE: dict[str, str] = {
    "rule": "!has(self.predictive) || !has(self.predictive.lookAheadSeconds) || "
            f"self.predictive.lookAheadSeconds <= self.syncPeriodSeconds * {MAX_LOOK_AHEAD_ROWS}",
    "message": f"predictive.lookAheadSeconds must be at most {MAX_LOOK_AHEAD_ROWS} sync periods",
}
COUPLING_RULE: dict[str, str] = {
    "rule": "!has(self.coupling) || size(self.coupling) == 0 || "
            "(has(self.predictive) && has(self.predictive.enabled) && self.predictive.enabled)",
    "message": "coupling is a forecast: it needs predictive.enabled",
}


class AdaptiveServiceSpec(KubeModel):
    model_config = KubeModel.model_config | ConfigDict(json_schema_extra=cast(JsonDict, {
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must be less than or equal to maxReplicas",
            },
            LOOK_AHEAD_ROWS_RULE,
            COUPLING_RULE,
        ]
    }))

    scale_target_ref: ScaleTargetRef
    min_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS,
                              description="Fewest replicas ever set.")
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS,
                              description="Most replicas ever set, forecast included.")
    metrics: list[MetricSpec] = Field(
        min_length=1, max_length=MAX_METRICS,
        description="Load metrics; the one asking for most replicas wins.")
    behavior: Behavior | None = Field(
        default=None, description="Stabilization windows and rate policies (HPA v2 defaults "
        "when absent).")
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="No change while load / capacity is within "
        "1 +- tolerance.")
    mode: Mode = Field(
        default="Active", description="Active scales; DryRun only reports what it would do "
        "(status, Events); Paused observes and holds the replicas.")
    prometheus: PrometheusRef | None = Field(
        default=None, description="Per-service Prometheus (default: the operator's).")
    sync_period_seconds: int = Field(
        default=15, ge=1, le=3600, description="Seconds between syncs; also the step of the "
        "forecast's history.")
    predictive: PredictiveSpec | None = Field(
        default=None, description="Scale ahead of the forecast load (off when absent).")
    healing: HealingSpec | None = Field(
        default=None, description="Watch health metrics and heal the workload (off when absent).")
    coupling: list[CouplingSpec] | None = Field(
        default=None, max_length=MAX_UPSTREAMS,
        description="Upstream services whose load this one follows: their readings and "
        "forecasts forecast this service's first metric (needs predictive.enabled).",
        json_schema_extra={"x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["service"]})

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AdaptiveServiceSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be less than or equal to maxReplicas")
        return self

    @model_validator(mode="after")
    def _forecast_rows_bounded(self) -> AdaptiveServiceSpec:
        ahead = self.predictive.look_ahead_seconds if self.predictive else None
        if ahead is not None and ahead > self.sync_period_seconds * MAX_LOOK_AHEAD_ROWS:
            raise ValueError(LOOK_AHEAD_ROWS_RULE["message"])
        return self

    @model_validator(mode="after")
    def _coupling_needs_forecast(self) -> AdaptiveServiceSpec:
        if self.coupling and not (self.predictive and self.predictive.enabled):
            raise ValueError(COUPLING_RULE["message"])
        services = [c.service for c in self.coupling or []]
        if len(set(services)) != len(services):
            raise ValueError("coupling names a service twice")
        return self


# --- status -----------------------------------------------------------------------------------


class MetricValue(KubeModel):
    """One metric as read for a decision."""

    name: StatusName = Field(description="The metric's name from the spec.")
    value: float | None = Field(default=None, description="The value read (null: unreadable).")
    target_per_replica: float = Field(description="The spec's target per replica.")
    proposed_replicas: int | None = Field(
        default=None, description="Replicas this metric alone asked for.")


class LastDecision(KubeModel):
    """The last decision that changed the replicas or the reason."""

    time: datetime = Field(description="When it was decided.")
    replicas: int = Field(ge=0, description="The desired replicas it gave.")
    reason: StatusName = Field(description="CamelCase reason: ScaleUp, ScaleDown, "
                               "WithinTolerance, ScaleUpStabilized, a rate limit, "
                               "FailedGetMetrics, ...")
    message: StatusText = Field(default="", description="Why, with the numbers.")
    metrics: list[MetricValue] = Field(default_factory=list, max_length=MAX_METRICS,
                                       description="Each metric as read for it.")


class RecommendationRecord(KubeModel):
    """A past recommendation, for the stabilization window."""

    time: datetime = Field(description="When it was made.")
    replicas: int = Field(ge=0, description="The replicas recommended.")


class ScaleEventRecord(KubeModel):
    """A past scale, for the rate policies."""

    time: datetime = Field(description="When the workload was scaled.")
    change: int = Field(description="Replicas added (negative: removed).")


class StabilizationHistory(KubeModel):
    """Recommendations within the window and scale events within the policy periods (small)."""

    recommendations: list[RecommendationRecord] = Field(
        default_factory=list, max_length=MAX_HISTORY_RECORDS,
        description="Recommendations within the stabilization window.")
    scale_events: list[ScaleEventRecord] = Field(
        default_factory=list, max_length=MAX_HISTORY_RECORDS,
        description="Scale events within the longest policy period.")


class PendingScale(KubeModel):
    """A replica write recorded and not yet seen applied."""

    replicas: int = Field(ge=0, description="Replicas being written.")
    previous: int = Field(ge=0, description="Replicas before the write.")
    time: datetime = Field(description="When the write was recorded.")


class ScaleWrites(KubeModel):
    """The operator's record of its writes to the target's replicas (recorded before each
    write) and of other clients' overrides, so that it never fights another writer."""

    applied_replicas: int | None = Field(
        default=None, ge=0, description="Replicas of the operator's last write seen applied.")
    pending: PendingScale | None = Field(
        default=None, description="A write recorded before it is made (crash safety).")
    overridden_at: list[datetime] = Field(
        default_factory=list, max_length=MAX_OVERRIDES,
        description="When other clients changed the replicas lately.")


class AdaptiveServiceStatus(KubeModel):
    # Keyed by type, as the API conventions say (server-side apply merges them by type).
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description="Ready (the summary), MetricsAvailable, ScalingActive, ScalingLimited and, "
        "with predictive scaling, ForecastReliable.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the status was written for.")
    current_replicas: int | None = Field(
        default=None, ge=0, description="Replicas of the workload at the last sync.")
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the last sync decided on.")
    last_scale_time: datetime | None = Field(
        default=None, description="When the operator last scaled the workload.")
    last_decision: LastDecision | None = Field(
        default=None, description="The last decision and the numbers behind it.")
    history: StabilizationHistory | None = Field(
        default=None, description="What HPA keeps in memory, kept here to survive restarts.")
    scale_writes: ScaleWrites | None = Field(
        default=None, description="The operator's own replica writes (recorded before each "
        "write) and other clients' overrides, so it never fights another writer.")
    forecast: PredictiveStatus | None = Field(
        default=None, description="The forecast, when predictive scaling is on.")
    healing: HealingStatus | None = Field(
        default=None, description="The detector's verdict and the healing ledger, when "
        "healing is on.")
    coupling: CouplingStatus | None = Field(
        default=None, description="The coupled forecast from the upstreams, when coupled.")


RESOURCE = ResourceDefinition(
    kind=KIND,
    plural=PLURAL,
    spec_model=AdaptiveServiceSpec,
    status_model=AdaptiveServiceStatus,
    short_names=("asvc",),
    description="Scales a workload as HorizontalPodAutoscaler v2 would, from Prometheus queries.",
    printer_columns=(
        PrinterColumn("Target", "string", ".spec.scaleTargetRef.name", "The scaled workload."),
        PrinterColumn("Min", "integer", ".spec.minReplicas", "Fewest replicas."),
        PrinterColumn("Max", "integer", ".spec.maxReplicas", "Most replicas."),
        PrinterColumn("Current", "integer", ".status.currentReplicas",
                      "Replicas at the last sync."),
        PrinterColumn("Desired", "integer", ".status.desiredReplicas",
                      "Replicas the last sync decided on."),
        PrinterColumn("Mode", "string", ".spec.mode", "Active, DryRun or Paused."),
        PrinterColumn("Forecast", "string", ".status.forecast.summary",
                      "The forecasting model when it drives scaling, else Reactive."),
        PrinterColumn("Coupling", "string", ".status.coupling.summary",
                      "Upstreams and whether their coupled forecast is trusted."),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp", AGE),
    ),
)
