"""The `healing` block of an AdaptiveService spec, and the healing part of its status."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from adaptive_operator.api.base import KubeModel

DEFAULT_METRICS: dict[str, str] = {
    "errorRatio": (
        'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
    ),
    "latencyP99": (
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
    ),
    "cpu": "sum(rate(container_cpu_usage_seconds_total[5m]))",
    "memory": "sum(container_memory_working_set_bytes)",
    "restarts": "sum(increase(kube_pod_container_status_restarts_total[5m]))",
}


class HealingMode(StrEnum):
    ACTIVE = "Active"
    DRY_RUN = "DryRun"


class Persistence(KubeModel):
    """An anomaly counts when k of the last n scored points are anomalous."""

    k: int = Field(default=2, ge=1)
    n: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _k_within_n(self) -> Persistence:
        if self.k > self.n:
            raise ValueError(f"persistence k ({self.k}) must be <= n ({self.n})")
        return self


class HealingSpec(KubeModel):
    enabled: bool = False
    mode: HealingMode = HealingMode.ACTIVE
    metrics: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_METRICS))
    sensitivity: float = Field(default=0.5, gt=0.0, le=1.0)
    persistence: Persistence = Field(default_factory=Persistence)
    rollback_window_seconds: int = Field(default=600, ge=0, alias="rollbackWindowSeconds")
    cooldown_seconds: int = Field(default=300, ge=0, alias="cooldownSeconds")
    max_actions_per_hour: int = Field(default=4, ge=0, alias="maxActionsPerHour")
    max_unavailable_pods: int = Field(default=1, ge=1, alias="maxUnavailablePods")
    verify_seconds: int = Field(default=120, ge=1, alias="verifySeconds")


class ContributionStatus(KubeModel):
    metric: str
    value: float
    baseline: float
    z: float


class VerdictStatus(KubeModel):
    score: float = Field(ge=0.0, le=1.0)
    is_anomaly: bool = Field(alias="isAnomaly")
    contributions: list[ContributionStatus] = Field(default_factory=list)
    time: str | None = None


class ActionStatus(KubeModel):
    id: str
    action: str
    reason: str
    message: str
    outcome: str
    time: str


class LedgerSummaryStatus(KubeModel):
    total: int = 0
    last_hour: int = Field(default=0, alias="lastHour")
    by_outcome: dict[str, int] = Field(default_factory=dict, alias="byOutcome")


class PlanStatus(KubeModel):
    """What healing decided at its last sync and why (e.g. MetricsUnreadable: not acting on data
    that could not be read)."""

    reason: str
    message: str
    time: str | None = None


class HealingStatus(KubeModel):
    state: PlanStatus | None = None
    last_verdict: VerdictStatus | None = Field(default=None, alias="lastVerdict")
    last_action: ActionStatus | None = Field(default=None, alias="lastAction")
    ledger: LedgerSummaryStatus = Field(default_factory=LedgerSummaryStatus)
