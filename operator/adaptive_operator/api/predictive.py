"""The `predictive` block of an AdaptiveService spec, and what status reports about it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from adaptive_operator.api.base import (
    MAX_HISTORY_SECONDS,
    MAX_LOOK_AHEAD_ROWS,
    MAX_LOOK_AHEAD_SECONDS,
    KubeModel,
    StatusName,
    StatusText,
)

DAY_SECONDS = 86400
MIN_HISTORY_SECONDS = 60


class ModelKind(StrEnum):
    AUTO = "Auto"
    SEASONAL_NAIVE = "SeasonalNaive"
    HOLT_WINTERS = "HoltWinters"
    MSTL = "MSTL"


class ObjectiveSpec(KubeModel):
    """What the service asks of its operating point: the least replicas that keep the unserved
    demand within a bound."""

    max_unserved_percent: float = Field(
        alias="maxUnservedPercent", ge=0.0, le=100.0,
        description="Unserved demand (load above what the ready pods carry), in percent of the "
        "demand, the service accepts. Once a day the operator replays its own last three days "
        "through its decision code at each quantile (0.6 to 0.95, and the spec's) with and "
        "without scale-down on the forecast, and keeps the cheapest point within this bound "
        "(the one serving the most when none is); until then it runs at the spec's quantile "
        "and scaleDownOnForecast.",
    )


class PredictiveSpec(KubeModel):
    """Forecast-driven scaling on top of the reactive HPA algorithm."""


    enabled: bool = Field(default=False, description="Scale ahead of the forecast load.")
    model: ModelKind = Field(
        default=ModelKind.AUTO,
        description="Forecasting model; Auto picks one per service by rolling-origin backtest.",
    )
    quantile: float = Field(
        default=0.8, gt=0.5, lt=1.0,
        description="Forecast quantile the replicas must serve over the look-ahead.",
    )
    look_ahead_seconds: int | None = Field(
        default=None, alias="lookAheadSeconds", ge=1, le=MAX_LOOK_AHEAD_SECONDS,
        description="How far ahead to provision; learned from pod readiness when unset.",
    )
    look_ahead_factor: float = Field(
        default=1.0, alias="lookAheadFactor", ge=1.0, le=10.0,
        description="How far ahead to add pods, as a multiple of the learned start-up time "
        "(plus one sync period); above 1 covers pods that start slower than their median. "
        "Ignored when lookAheadSeconds is set.",
    )
    # The model needs three cycles of the season it detects, not a day: a minute is the floor so
    # that short seasons (and the accelerated e2e test) can be served; a day-long season simply
    # stays reactive (ForecastReliable=False, too little history) until three days are kept.
    history_seconds: int = Field(
        default=14 * DAY_SECONDS, alias="historySeconds", ge=MIN_HISTORY_SECONDS,
        le=MAX_HISTORY_SECONDS,
        description="History window fetched from Prometheus and used for fitting (the forecast "
        "needs three cycles of the detected season within it); at most 100,000 sync periods of "
        "it are kept.",
    )
    scale_down_on_forecast: bool = Field(
        default=False, alias="scaleDownOnForecast",
        description="Allow scaling down when the forecast is confidently lower over the whole "
        "look-ahead; off: the forecast only ever raises replicas.",
    )
    objective: ObjectiveSpec | None = Field(
        default=None,
        description="Choose the quantile and scale-down on forecast per service from its own "
        "history: the cheapest point that meets the objective.",
    )


class ForecastPointStatus(KubeModel):
    """The forecast load at one point of the look-ahead."""

    offset_seconds: float = Field(alias="offsetSeconds", description="Seconds after the sync.")
    p50: float = Field(description="Median forecast.")
    p_high: float = Field(alias="pHigh", description="Forecast at the spec's quantile.")


class PredictiveStatus(KubeModel):
    """The forecaster's state for `kubectl get -o yaml`: model, backtest and the forecast."""


    model: ModelKind | None = Field(default=None, description="The model in use.")
    backtest_mase: float | None = Field(
        default=None, alias="backtestMase",
        description="The model's backtest error relative to seasonal naive's in-sample error "
        "(MASE; below 1 is better).")
    reliable: bool = Field(
        default=False, description="The forecast drives scaling (it beats seasonal naive).")
    reason: StatusText = Field(default="", description="Why it is, or is not, reliable.")
    forecast: list[ForecastPointStatus] = Field(
        default_factory=list, max_length=MAX_LOOK_AHEAD_ROWS,
        description="The forecast over the look-ahead, one point per "
        "sync period.")
    metric: StatusName | None = Field(default=None,
                                      description="The metric this forecast is of.")
    look_ahead_seconds: float | None = Field(
        default=None, alias="lookAheadSeconds", description="How far ahead it provisions.")
    look_ahead_source: StatusName = Field(
        default="", alias="lookAheadSource",
        description="spec, learned from the pods' readiness, or the default.")
    summary: StatusText = Field(
        default="", description="The model when the forecast is trusted, else Reactive "
        "(the FORECAST column).")
    persistence_rise: float | None = Field(
        default=None, alias="persistenceRise",
        description="While no forecast is trusted and the floor is the persistence band's: the "
        "rise over the last reading that floor provisions for (a coupled downstream follows "
        "it). Absent otherwise.")
