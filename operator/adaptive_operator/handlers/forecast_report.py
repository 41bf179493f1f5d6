"""The forecast's gauges on /metrics (what status shows: domain/scaling/forecast_status.py)."""

from __future__ import annotations

from adaptive_operator.adapters import telemetry
from adaptive_operator.domain.scaling.forecast import MetricForecast, ServiceForecast


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
