"""What a sync's forecast shows: `status.forecast`, the ForecastReliable condition, the gauges."""

from __future__ import annotations

from typing import Any

from adaptive_operator.adapters import telemetry
from adaptive_operator.api.base import MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.predictive import ForecastPointStatus, PredictiveStatus
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.scaling.forecast import MetricForecast, ServiceForecast
from adaptive_operator.domain.scaling.predictive import PredictiveState

# The guard's reasons (domain/scaling/predictive.py, forecasting/engine.py) by their opening words.
REASONS = (
    ("too little history", "TooLittleHistory"),
    ("no seasonality", "NoSeasonality"),
    ("history backfill failed", "HistoryUnavailable"),
    ("no data", "HistoryUnavailable"),
    ("forecast warming up", "WarmingUp"),
)


def _camel(reference: str) -> str:
    """'seasonal naive' -> 'SeasonalNaive'; an unnamed reference is seasonal naive's."""
    return "".join(word.capitalize() for word in (reference or "seasonal naive").split())


def condition_reason(reason: str, reference: str = "") -> str:
    if reason.endswith("not better"):
        return f"NotBetterThan{_camel(reference)}"
    for opening, camel in REASONS:
        if reason.startswith(opening):
            return camel
    return "ForecastUnreliable"


def reliable_condition(forecast: ServiceForecast) -> Condition:
    trusted = [m for m in forecast.metrics if m.state.reliable]
    if trusted:
        lead = forecast.lead if forecast.lead.state.reliable else trusted[0]
        return Condition("ForecastReliable", "True",
                         f"ForecastBetterThan{_camel(lead.state.reference)}",
                         f"metric {lead.metric}: {lead.state.model} forecast is used "
                         f"({lead.state.reason}){_ignored(forecast)}")
    lead = forecast.lead
    return Condition("ForecastReliable", "False",
                     condition_reason(lead.state.reason, lead.state.reference),
                     f"metric {lead.metric}: {lead.state.reason}; scaling is reactive only"
                     f"{_ignored(forecast)}")


def _ignored(forecast: ServiceForecast) -> str:
    """What the history backfills left out (as gaps), metric by metric."""
    notes = [f"{m.metric}'s history {m.ignored}" for m in forecast.metrics if m.ignored]
    return "; " + "; ".join(notes) if notes else ""


def disabled_condition() -> Condition:
    return Condition("ForecastReliable", "False", "PredictiveDisabled",
                     "predictive scaling is not enabled; scaling is reactive only")


def forecast_status(forecast: ServiceForecast) -> dict[str, Any]:
    lead = forecast.lead
    state = lead.state
    model = status_from_state(state).model_copy(update={
        "metric": lead.metric,
        "look_ahead_seconds": forecast.look_ahead.seconds,
        "look_ahead_source": forecast.look_ahead.source,
        "summary": str(state.model) if state.reliable and state.model else "Reactive",
        "backtest_mase": _rounded(state.backtest_mase),
        "forecast": [p.model_copy(update={"p50": _rounded(p.p50), "p_high": _rounded(p.p_high)})
                     for p in status_from_state(state).forecast],
    })
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _rounded(value: float | None) -> float | None:
    # Status is written only when it changes: noise in the 4th significant digit is no change.
    return None if value is None else float(f"{value:.4g}")


def publish(namespace: str, name: str, quantile: float, forecast: ServiceForecast) -> None:
    """Gauges: the forecast at the end of the look-ahead (median and high quantile), the floor
    and the ceiling."""
    telemetry.LOOKAHEAD.labels(namespace, name).set(forecast.look_ahead.seconds)
    telemetry.FORECAST_RELIABLE.labels(namespace, name).set(1 if forecast.reliable else 0)
    for metric in forecast.metrics:
        _publish_metric(namespace, name, quantile, metric)
    for gauge, value in ((telemetry.FORECAST_FLOOR, forecast.floor),
                         (telemetry.FORECAST_CEILING, forecast.ceiling)):
        if value is None:
            telemetry.forget(gauge, namespace, name)
        else:
            gauge.labels(namespace, name).set(value)


def _publish_metric(namespace: str, name: str, quantile: float, metric: MetricForecast) -> None:
    points = metric.state.forecast
    for label, value in (("0.5", points[-1].p50 if points else None),
                         (f"{quantile:g}", points[-1].p_high if points else None)):
        if value is None:  # no forecast: a gap on the chart, not a stale line
            telemetry.forget(telemetry.FORECAST, namespace, name, metric.metric, label)
        else:
            telemetry.FORECAST.labels(namespace, name, metric.metric, label).set(value)


def unpublish(namespace: str, name: str, metrics: list[str], quantile: float) -> None:
    telemetry.forget(telemetry.LOOKAHEAD, namespace, name)
    telemetry.forget(telemetry.FORECAST_RELIABLE, namespace, name)
    telemetry.forget(telemetry.FORECAST_FLOOR, namespace, name)
    telemetry.forget(telemetry.FORECAST_CEILING, namespace, name)
    for metric in metrics:
        for label in ("0.5", f"{quantile:g}"):
            telemetry.forget(telemetry.FORECAST, namespace, name, metric, label)


def status_from_state(state: PredictiveState) -> PredictiveStatus:
    """Status from the advisor's state (the advisor lives in the domain, status in the API)."""
    return PredictiveStatus(
        model=state.model,
        backtest_mase=state.backtest_mase,
        reliable=state.reliable,
        reason=state.reason,
        forecast=[
            ForecastPointStatus(offset_seconds=p.offset_seconds, p50=p.p50, p_high=p.p_high)
            for p in state.forecast[:MAX_LOOK_AHEAD_ROWS]
        ],
    )
