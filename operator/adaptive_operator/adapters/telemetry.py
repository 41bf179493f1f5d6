"""The operator's own metrics, served on /metrics for Prometheus."""

from __future__ import annotations

import contextlib
from typing import TypeVar

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
COUPLING_WAIT_SECONDS = Histogram(
    "adaptive_coupling_wait_seconds", "Time a coupled service's sync waited for its upstreams' "
    "running syncs to end before reading their status (only syncs that waited).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DESIRED = Gauge(
    "adaptive_desired_replicas", "Replicas the last decision asked for.", ["namespace", "name"])
READY = Gauge(
    "adaptive_ready_replicas", "Ready pods of the target at the last sync (capacity = ready x "
    "target per replica).", ["namespace", "name"])
METRIC_TARGET = Gauge(
    "adaptive_metric_target_per_replica", "The load one replica should carry, per scaling "
    "metric (capacity = ready replicas x this).", ["namespace", "name", "metric"])
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
    "adaptive_forecast_floor_replicas", "Replicas the forecast asks for: the trusted "
    "forecast's, else the persistence band's (absent when neither has one).",
    ["namespace", "name"])
FORECAST_CEILING = Gauge(
    "adaptive_forecast_ceiling_replicas", "Replicas the trusted forecast lets the service scale "
    "down to (scaleDownOnForecast; absent when off or not trusted).", ["namespace", "name"])
ANOMALY_SCORE = Gauge(
    "adaptive_anomaly_score", "The healing detector's score of the service's latest row (0-1, "
    "higher is more anomalous); absent before its first verdict.", ["namespace", "name"])
COUPLING_TRUSTED = Gauge(
    "adaptive_coupling_trusted", "1 while the coupled forecast from the upstreams is trusted, "
    "0 while it is ignored (absent when not coupled).", ["namespace", "name"])
COUPLING_FLOOR = Gauge(
    "adaptive_coupling_floor_replicas", "Replicas the trusted coupled forecast asks for.",
    ["namespace", "name"])
FORECAST_RELIABLE = Gauge(
    "adaptive_forecast_reliable", "1 while the forecast drives scaling, 0 while it is not "
    "trusted (the service runs reactive only); absent without predictive scaling.",
    ["namespace", "name"])
METRICS_AVAILABLE = Gauge(
    "adaptive_metrics_available", "1 when every scaling metric was read at the last sync, "
    "else 0.", ["namespace", "name"])
LEADER = Gauge(
    "adaptive_leader", "1 while this operator process leads (acts), 0 while it stands by.")
LEASE_SHARD_HELD = Gauge(
    "adaptive_lease_shard_held", "With --lease-shards above 1: 1 while this replica holds the "
    "shard's Lease (acts on its services), else 0.", ["shard"])
LEASE_ROUND_SECONDS = Gauge(
    "adaptive_lease_round_seconds", "With --leader-election or --lease-shards above 1: how "
    "long the last round of the Lease renewals took (the list and every write); a round near "
    "the renewal deadline (10 s) loses leases.")
LEASE_SHARDS_LAPSED = Counter(
    "adaptive_lease_shards_lapsed_total", "With --lease-shards above 1: shards this replica "
    "meant to keep but did not renew within the renewal deadline; with --leader-election, "
    "times the leader's Lease lapsed (it counts as the one shard).")
HEALING_DECISIONS = Counter(
    "adaptive_healing_decisions_total", "Healing syncs by what was decided (Healthy, "
    "UnhealthyPods, HealingExhausted, ActionRateLimited, ...).", ["namespace", "name", "reason"])
HEALING_ACTIONS = Counter(
    "adaptive_healing_actions_total", "Healing actions recorded, by action and outcome "
    "(Pending when decided, Helped or DidNotHelp when verified, DryRun).",
    ["namespace", "name", "action", "outcome"])
SHARD_SLOTS = Gauge(
    "adaptive_shard_slots", "Hash slots a shard owns in the routing table.",
    ["namespace", "name", "shard"])
SHARD_MIGRATING = Gauge(
    "adaptive_shard_migrations_in_progress", "Slot moves marked migrating in the routing "
    "table.", ["namespace", "name"])
SHARD_EPOCH = Gauge(
    "adaptive_shard_routing_epoch", "The routing table's epoch (it moves when slots move).",
    ["namespace", "name"])

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


_WORKER_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WORKER_QUEUE_SECONDS = Histogram(
    "adaptive_worker_queue_seconds", "Time a blocking call (API server, Prometheus, model "
    "fitting) waited for a free worker thread.", buckets=_WORKER_BUCKETS)
WORKER_RUN_SECONDS = Histogram(
    "adaptive_worker_run_seconds", "Time a blocking call ran in its worker thread, by pool and "
    "by the function called (names from the operator's own code: a bounded set).",
    ["pool", "call"], buckets=_WORKER_BUCKETS)
FITS_PENDING = Gauge(
    "adaptive_fits_pending", "Model fits (forecasts' and detectors') queued at the fit gate or "
    "running: after a start, the warm-up's backlog; 0 once every model is fitted.")
FORECAST_FITS = Counter(
    "adaptive_forecast_fits_total", "Forecast fits sent to the fit gate, by why: `first` (after "
    "the history's backfill), `new` (a new advisor: another look-ahead or settings), "
    "`discontinued` (the history did not continue what the model saw), `behind` (more new rows "
    "than a sync extends in place), `scheduled` (a refit due).", ["reason"])
GC_PAUSE_SECONDS = Counter(
    "adaptive_gc_pause_seconds_total", "Time the process stood still in Python's cyclic garbage "
    "collector, by generation (2: a full collection over every object held).", ["generation"])
T = TypeVar("T")


def forget(gauge: Gauge, *labels: str) -> None:
    """Remove one series of a labelled gauge (a service gone); nothing if it was never set."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address)
