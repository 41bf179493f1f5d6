"""The operator's own metrics, served on /metrics for Prometheus."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = Counter(
    "adaptive_decisions_total", "Scaling decisions made, by reason.",
    ["namespace", "name", "reason"])
SCALES = Counter(
    "adaptive_scale_actions_total", "Scale writes to targets, by direction.",
    ["namespace", "name", "direction"])
ERRORS = Counter(
    "adaptive_reconcile_errors_total", "Reconciliations that could not complete, by reason.",
    ["namespace", "name", "reason"])
RECONCILE_SECONDS = Histogram(
    "adaptive_reconcile_duration_seconds", "Time to observe, decide and act for one service.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
DESIRED = Gauge(
    "adaptive_desired_replicas", "Replicas the last decision asked for.", ["namespace", "name"])
METRIC_VALUE = Gauge(
    "adaptive_metric_value", "The last value read for a scaling metric (workload total).",
    ["namespace", "name", "metric"])

# Forecast of a metric at the end of the look-ahead, by quantile ("0.5" and the spec's high one):
# `adaptive_forecast_value offset <look-ahead>` lines up with `adaptive_metric_value` on a chart.
FORECAST = Gauge(
    "adaptive_forecast_value", "Forecast of a scaling metric at the end of the look-ahead.",
    ["namespace", "name", "metric", "quantile"])
LOOKAHEAD = Gauge(
    "adaptive_forecast_lookahead_seconds", "How far ahead the forecast provisions.",
    ["namespace", "name"])
FORECAST_FLOOR = Gauge(
    "adaptive_forecast_floor_replicas", "Replicas the trusted forecast asks for (absent when "
    "the service runs reactive only).", ["namespace", "name"])
FORECAST_CEILING = Gauge(
    "adaptive_forecast_ceiling_replicas", "Replicas the trusted forecast lets the service scale "
    "down to (scaleDownOnForecast; absent when off or not trusted).", ["namespace", "name"])

# What the operator asks of the outside, for capacity planning ("how many queries per second
# will 1,000 services cost my Prometheus / API server?").
PROMETHEUS_QUERIES = Counter(
    "adaptive_prometheus_queries_total", "HTTP queries sent to Prometheus, by kind "
    "(instant, range).", ["kind"])
PROMETHEUS_READS = Counter(
    "adaptive_prometheus_reads_total", "Metric values read for services, by how they were "
    "served: query (the service's own query), batch (one grouped query shared by services), "
    "shared (an answer fetched moments before).", ["served"])
API_REQUESTS = Counter(
    "adaptive_api_requests_total", "Requests to the Kubernetes API server made by the "
    "AdaptiveService adapters (kopf's own watches, patches and Events are not counted), by "
    "verb and resource.",
    ["verb", "resource"])


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address)
