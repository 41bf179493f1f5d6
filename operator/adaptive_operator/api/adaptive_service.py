"""The AdaptiveService resource (adaptive.dev/v1alpha1): spec and status models.

Field names and defaults follow HorizontalPodAutoscaler v2 so that users recognise them. The
forecasting and healing issues add `predictive` and `healing` blocks: subclass `AdaptiveServiceSpec`
(or add an optional field here) with their own models; the CRD generator picks up whatever the
registered model declares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from adaptive_operator.api.base import Condition, KubeModel, PrinterColumn, ResourceDefinition
from adaptive_operator.api.healing import HealingSpec, HealingStatus
from adaptive_operator.api.predictive import PredictiveSpec, PredictiveStatus

KIND = "AdaptiveService"
PLURAL = "adaptiveservices"

Mode = Literal["Active", "DryRun", "Paused"]

# The condition types of issue 3; `Ready` is the summary (Kubernetes API conventions).
CONDITION_TYPES: tuple[str, ...] = ("Ready", "MetricsAvailable", "ScalingActive", "ScalingLimited")


class ScaleTargetRef(KubeModel):
    """The workload to scale; it must have a /scale subresource."""

    api_version: str = Field(default="apps/v1", min_length=1)
    kind: str = Field(default="Deployment", min_length=1)
    name: str = Field(min_length=1)


class MetricSpec(KubeModel):
    """A PromQL query for the workload's total and the share of it one replica should carry."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    query: str = Field(min_length=1, description="PromQL returning the workload's total load.")
    target_per_replica: float = Field(gt=0, description="Load one replica should carry.")


class ScalingPolicy(KubeModel):
    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_seconds: int = Field(ge=1, le=1800)


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
        description="Default: up max(4 pods, 100%) per 15 s; down 100% per 15 s.",
    )


class Behavior(KubeModel):
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None


class PrometheusRef(KubeModel):
    url: str = Field(min_length=1, pattern=r"^https?://", description="Overrides the default.")


class AdaptiveServiceSpec(KubeModel):
    model_config = KubeModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                }
            ]
        }
    }

    scale_target_ref: ScaleTargetRef
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(ge=1)
    metrics: list[MetricSpec] = Field(min_length=1)
    behavior: Behavior | None = None
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    mode: Mode = "Active"
    prometheus: PrometheusRef | None = None
    sync_period_seconds: int = Field(default=15, ge=1, le=3600)
    predictive: PredictiveSpec | None = Field(
        default=None, description="Scale ahead of the forecast load (off when absent).")
    healing: HealingSpec | None = Field(
        default=None, description="Watch health metrics and heal the workload (off when absent).")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AdaptiveServiceSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be less than or equal to maxReplicas")
        return self


# --- status -----------------------------------------------------------------------------------


class MetricValue(KubeModel):
    name: str
    value: float | None = None
    target_per_replica: float
    proposed_replicas: int | None = None


class LastDecision(KubeModel):
    time: datetime
    replicas: int = Field(ge=0)
    reason: str
    message: str = ""
    metrics: list[MetricValue] = Field(default_factory=list)


class RecommendationRecord(KubeModel):
    time: datetime
    replicas: int = Field(ge=0)


class ScaleEventRecord(KubeModel):
    time: datetime
    change: int


class StabilizationHistory(KubeModel):
    """Recommendations within the window and scale events within the policy periods (small)."""

    recommendations: list[RecommendationRecord] = Field(default_factory=list)
    scale_events: list[ScaleEventRecord] = Field(default_factory=list)


class PendingScale(KubeModel):
    replicas: int = Field(ge=0)
    previous: int = Field(ge=0)
    time: datetime


class ScaleWrites(KubeModel):
    """The operator's record of its writes to the target's replicas (recorded before each
    write) and of other clients' overrides, so that it never fights another writer."""

    applied_replicas: int | None = Field(default=None, ge=0)
    pending: PendingScale | None = None
    overridden_at: list[datetime] = Field(default_factory=list)


class AdaptiveServiceStatus(KubeModel):
    # Keyed by type, as the API conventions say (server-side apply merges them by type).
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(default=None, ge=0)
    current_replicas: int | None = Field(default=None, ge=0)
    desired_replicas: int | None = Field(default=None, ge=0)
    last_scale_time: datetime | None = None
    last_decision: LastDecision | None = None
    history: StabilizationHistory | None = None
    scale_writes: ScaleWrites | None = None
    forecast: PredictiveStatus | None = None
    healing: HealingStatus | None = None


RESOURCE = ResourceDefinition(
    kind=KIND,
    plural=PLURAL,
    spec_model=AdaptiveServiceSpec,
    status_model=AdaptiveServiceStatus,
    short_names=("asvc",),
    description="Scales a workload as HorizontalPodAutoscaler v2 would, from Prometheus queries.",
    printer_columns=(
        PrinterColumn("Target", "string", ".spec.scaleTargetRef.name", "The scaled workload."),
        PrinterColumn("Min", "integer", ".spec.minReplicas"),
        PrinterColumn("Max", "integer", ".spec.maxReplicas"),
        PrinterColumn("Current", "integer", ".status.currentReplicas"),
        PrinterColumn("Desired", "integer", ".status.desiredReplicas"),
        PrinterColumn("Mode", "string", ".spec.mode"),
        PrinterColumn("Forecast", "string", ".status.forecast.summary",
                      "The forecasting model when it drives scaling, else Reactive."),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    ),
)
