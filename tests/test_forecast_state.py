"""The operator's per-service forecast state and what it reports (no cluster, no Prometheus)."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from adaptive_operator.adapters.prometheus import RangeSeries
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.forecasting import ModelKind
from adaptive_operator.domain.scaling import forecast_status
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.forecast import MetricForecast, ServiceForecast, combine
from adaptive_operator.domain.scaling.forecast_history import MetricHistory, capacity_rows
from adaptive_operator.domain.scaling.forecast_memory import WARMING_UP
from adaptive_operator.domain.scaling.lookahead import LookAhead
from adaptive_operator.domain.scaling.predictive import ForecastPoint, PredictiveState
from adaptive_operator.handlers import forecast_report, forecasts, scaling_observe
from adaptive_operator.handlers.warmup import WarmUps

from fakes import Ranges

PERIOD = 2


def spec(**predictive: object) -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 20, "syncPeriodSeconds": PERIOD,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "predictive": {"enabled": True, "lookAheadSeconds": 6, "historySeconds": 120,
                       **predictive},
    })


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed


def seasonal(i: int) -> float:
    return 50 + 30 * math.sin(2 * math.pi * i / 15) + (i * 7919 % 7) / 2


async def test_a_failed_backfill_leaves_the_service_reactive_and_says_why() -> None:
    forecaster = forecasts.ServiceForecaster()
    readings = (MetricReading("load", 40.0, 10),)
    url = closed_port_url()
    found = await forecaster.update(spec(), url, readings, (), 1000.0)
    assert found.lead.state.reason.startswith("forecast warming up")
    await forecaster.settled()
    found = await forecaster.update(spec(), url, readings, (), 1002.0)
    assert found.floor is None
    assert found.lead.state.reason.startswith("history backfill failed")
    condition = forecast_status.reliable_condition(found)
    assert (condition.status, condition.reason) == ("False", "HistoryUnavailable")
    # ... and tried again: the next sync warms up anew.
    found = await forecaster.update(spec(), url, readings, (), 1004.0)
    assert found.lead.state.reason.startswith("forecast warming up")
    await forecaster.settled()


def seasonal_range(calls: list[tuple[float, float]]) -> Any:
    async def answer(url: str, query: str, start: float, end: float,
                     step: float) -> RangeSeries:
        calls.append((start, end))
        count = int((end - start) / step) + 1
        first = round(start / step)
        return RangeSeries(start, step, [seasonal(first + k) for k in range(count)], {})
    return answer


def check_warming_up(first: ServiceForecast, calls: list[tuple[float, float]]) -> None:
    """Nothing read yet, no floor, and the status says why."""
    assert calls == [] and first.floor is None
    condition = forecast_status.reliable_condition(first)
    assert (condition.reason, condition.status) == ("WarmingUp", "False")
    assert "forecast warming up" in condition.message and "reactive only" in condition.message
    assert forecast_status.forecast_status(first)["summary"] == "Reactive"


async def test_a_service_decides_reactively_while_its_forecast_warms_up() -> None:
    calls: list[tuple[float, float]] = []
    forecaster = forecasts.ServiceForecaster(WarmUps(ranges=Ranges(seasonal_range(calls))))
    service = spec()
    first = await forecaster.update(service, "http://prom", (MetricReading("load", 1.0, 10),),
                                    (), 240.0)
    # The first sync does not wait for the backfill or the fit: it says it is warming up.
    check_warming_up(first, calls)
    # A second sync while it still warms neither starts another backfill nor waits.
    await forecaster.update(service, "http://prom", (MetricReading("load", 77.0, 10),), (),
                            242.0)
    await forecaster.settled()
    assert len(calls) == 1
    metric = forecaster.metrics["load"]
    fitted = metric.advisor
    assert metric.history is not None and fitted is not None  # fitted in the background
    assert metric.history.value(metric.history.row_at(242.0)) == 77.0  # kept while warming
    found = await forecaster.update(service, "http://prom", (MetricReading("load", 60.0, 10),),
                                    (), 244.0)
    # The advisor's own word now (and the persistence band's floor while it is not trusted).
    assert found.lead.state.reason.startswith("too little history")
    assert metric.advisor is fitted  # the first fit made in the background is used


async def test_services_starting_together_backfill_together() -> None:
    """Held back one at a time, backfills could not be grouped into one query (range_batch)."""
    arrived = 0
    everyone = asyncio.Event()

    async def gathering(url: str, query: str, start: float, end: float,
                        step: float) -> RangeSeries:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            everyone.set()
        await everyone.wait()  # returns only once all three are out at the same time
        return RangeSeries(start, step, [40.0] * (int((end - start) / step) + 1), {})

    warmups = WarmUps(ranges=Ranges(gathering))
    services = [forecasts.ServiceForecaster(warmups) for _ in range(3)]
    for forecaster in services:
        await forecaster.update(spec(), "http://prom", (MetricReading("load", 40.0, 10),), (),
                                240.0)
    await asyncio.wait_for(asyncio.gather(*(f.settled() for f in services)), 10)
    assert all(f.metrics["load"].advisor is not None for f in services)


async def test_one_fit_runs_at_a_time() -> None:
    warmups = WarmUps()
    entered, go = threading.Event(), threading.Event()
    calls: list[str] = []

    def first() -> str:
        calls.append("first")
        entered.set()
        go.wait(10)
        return "first"

    def second() -> str:
        calls.append("second")
        return "second"

    one = asyncio.create_task(warmups.fit(first))
    two = asyncio.create_task(warmups.fit(second))
    assert await asyncio.to_thread(entered.wait, 10)
    assert calls == ["first"]  # the second waits at the gate, not on a thread
    go.set()
    assert list(await asyncio.gather(one, two)) == ["first", "second"]  # typed as a tuple


async def test_a_stopped_forecaster_drops_its_warm_up() -> None:
    never = asyncio.Event()

    async def stuck(url: str, query: str, start: float, end: float, step: float) -> RangeSeries:
        await never.wait()
        raise AssertionError("unreachable")

    memory = scaling_observe.Memory()
    forecaster = memory.forecasting(WarmUps(ranges=Ranges(stuck)))
    await forecaster.update(spec(), "http://prom", (MetricReading("load", 40.0, 10),), (), 240.0)
    task = forecaster.metrics["load"].warming
    assert task is not None
    memory.drop_forecast()
    await forecaster.settled()
    assert task.cancelled()


async def test_samples_a_backfill_ignored_are_named_in_the_condition() -> None:
    async def hostile(url: str, query: str, start: float, end: float,
                      step: float) -> RangeSeries:
        count = int((end - start) / step) + 1
        return RangeSeries(start, step, [None, None, *[40.0] * (count - 2)],
                           {"NaN": 1, "negative": 1})

    forecaster = forecasts.ServiceForecaster(WarmUps(ranges=Ranges(hostile)))
    await forecaster.update(spec(), "http://prom", (MetricReading("load", 40.0, 10),), (), 1000.0)
    await forecaster.settled()
    found = await forecaster.update(spec(), "http://prom", (MetricReading("load", 40.0, 10),),
                                    (), 1002.0)
    assert found.metrics[0].ignored == "ignored 1 NaN sample, 1 negative sample"
    condition = forecast_status.reliable_condition(found)
    assert condition.message.endswith(
        "; load's history ignored 1 NaN sample, 1 negative sample")
    clean = combine((MetricForecast("rps", 6, state(True, 6)),), AHEAD)
    assert "ignored" not in forecast_status.reliable_condition(clean).message


async def test_live_rows_drive_the_floor_once_the_forecast_is_trusted() -> None:
    service = spec()
    forecaster = forecasts.ServiceForecaster()
    metric = forecaster.metrics.setdefault("load", forecasts.MetricForecaster())
    # As if backfilled: the source matches the spec, so syncs only append.
    metric.source = ("http://prom", "sum(x)", float(PERIOD), 120)
    metric.history = MetricHistory(0.0, PERIOD, capacity_rows(120, PERIOD))
    floors, states = [], []
    for i in range(160):
        reading = (MetricReading("load", seasonal(i), 10),)
        found = await forecaster.update(service, "http://prom", reading, (), i * PERIOD)
        floors.append(found.floor)
        states.append(found.lead.state)
        await forecaster.settled()  # a refit the sync started is done before the next sync
    assert metric.history.kept == 60  # capped by historySeconds / period
    assert states[0].reason == WARMING_UP and floors[0] is None  # its first fit was started
    assert states[1].reason == "too little history" and floors[1] is None
    trusted = [f for f in floors if f is not None]
    assert trusted and max(trusted) <= math.ceil(100 / 10) + 2
    assert found.look_ahead == LookAhead(6.0, "spec")


async def test_a_changed_quantile_restarts_the_advisor_on_the_kept_rows() -> None:
    forecaster = forecasts.ServiceForecaster()
    metric = forecaster.metrics.setdefault("load", forecasts.MetricForecaster())
    metric.source = ("http://prom", "sum(x)", float(PERIOD), 120)
    metric.history = MetricHistory(0.0, PERIOD, capacity_rows(120, PERIOD))
    for i in range(80):
        await forecaster.update(spec(), "http://prom", (MetricReading("load", seasonal(i), 10),),
                                (), i * PERIOD)
        await forecaster.settled()
    first = metric.advisor
    await forecaster.update(spec(quantile=0.95), "http://prom",
                            (MetricReading("load", seasonal(80), 10),), (), 80 * PERIOD)
    assert metric.advisor is not first and metric.base == metric.history.first_kept == 21


def state(reliable: bool, floor: int | None = None, reason: str = "ok") -> PredictiveState:
    points = (ForecastPoint(2.0, 41.23456, 47.0), ForecastPoint(4.0, 52.0, 58.98765))
    return PredictiveState(ModelKind.HOLT_WINTERS, 0.7123456, reliable, reason, points, floor)


AHEAD = LookAhead(4.0, "spec")


def test_the_floor_is_the_largest_trusted_metric() -> None:
    found = combine((MetricForecast("cpu", 4, state(True, 4)),
                     MetricForecast("rps", 7, state(True, 7)),
                     MetricForecast("mem", None, state(False))), AHEAD)
    assert (found.floor, found.lead.metric, found.reliable) == (7, "rps", True)


def down(reliable: bool, to: int | None) -> PredictiveState:
    return PredictiveState(ModelKind.HOLT_WINTERS, 0.7, reliable, "ok", (), to, to)


@pytest.mark.parametrize(
    ("states", "ceiling"),
    [
        pytest.param((down(True, 4), down(True, 7)), 7, id="every-metric-allows-the-largest"),
        pytest.param((down(True, 4), down(True, None)), None,
                     id="a-metric-without-scale-down-keeps-its-say"),
        pytest.param((down(True, 4), down(False, 2)), None, id="an-untrusted-metric-blocks-it"),
        pytest.param((down(True, 3),), 3, id="one-metric"),
    ],
)
def test_the_ceiling_needs_every_metric(states: tuple[PredictiveState, ...],
                                        ceiling: int | None) -> None:
    results = tuple(MetricForecast(f"m{i}", s.floor_replicas if s.reliable else None, s)
                    for i, s in enumerate(states))
    assert combine(results, AHEAD).ceiling == ceiling


def test_without_a_trusted_metric_the_first_with_a_forecast_leads() -> None:
    found = combine((MetricForecast("cpu", None, PredictiveState()),
                     MetricForecast("rps", None, state(False, reason="forecast error 1.2x "
                                                       "seasonal naive's: not better"))), AHEAD)
    assert (found.floor, found.lead.metric, found.reliable) == (None, "rps", False)
    condition = forecast_status.reliable_condition(found)
    assert (condition.status, condition.reason) == ("False", "NotBetterThanSeasonalNaive")
    assert "scaling is reactive only" in condition.message


def test_on_the_persistence_band_the_condition_does_not_say_reactive_only() -> None:
    banded = replace(state(False, floor=3, reason="forecast warming up; persistence band asks "
                           "for 3"), persistence_rise=0.4)
    found = combine((MetricForecast("rps", None, banded),), AHEAD)
    message = forecast_status.reliable_condition(found).message
    assert "with the band as its floor" in message and "reactive only" not in message


@pytest.mark.parametrize(
    ("reason", "camel"),
    [
        pytest.param("too little history", "TooLittleHistory", id="no-rows-yet"),
        pytest.param("too little history: 1.5 of 3 cycles of the 30-row season",
                     "TooLittleHistory", id="cycles-missing"),
        pytest.param("no seasonality detected in the history", "NoSeasonality", id="flat"),
        pytest.param("history backfill failed: range query failed", "HistoryUnavailable",
                     id="prometheus-down-at-start"),
        pytest.param("too little history for a backtest", "TooLittleHistory", id="backtest"),
        pytest.param("something new", "ForecastUnreliable", id="unknown-reason-still-camel"),
    ],
)
def test_condition_reason(reason: str, camel: str) -> None:
    assert forecast_status.condition_reason(reason) == camel


@pytest.mark.parametrize(
    ("reference", "reliable", "camel"),
    [
        pytest.param("seasonal naive", True, "ForecastBetterThanSeasonalNaive", id="fitted-used"),
        pytest.param("persistence", True, "ForecastBetterThanPersistence",
                     id="seasonal-naive-used-held-to-persistence"),
        pytest.param("persistence", False, "NotBetterThanPersistence",
                     id="seasonal-naive-refused-by-persistence"),
        pytest.param("seasonal naive", False, "NotBetterThanSeasonalNaive", id="fitted-refused"),
    ],
)
def test_condition_names_the_guard_reference(reference: str, reliable: bool, camel: str) -> None:
    reason = f"forecast error 0.5x {reference}'s" + ("" if reliable else ": not better")
    held = PredictiveState(ModelKind.SEASONAL_NAIVE, 0.5, reliable, reason,
                           floor_replicas=3 if reliable else None, reference=reference)
    found = combine((MetricForecast("rps", held.floor_replicas, held),), AHEAD)
    assert forecast_status.reliable_condition(found).reason == camel


def test_status_shows_model_look_ahead_and_rounded_forecast() -> None:
    found = combine((MetricForecast("rps", 6, state(True, 6)),), AHEAD)
    status = forecast_status.forecast_status(found)
    assert status["summary"] == "HoltWinters" and status["metric"] == "rps"
    assert status["backtestMase"] == 0.7123 and status["lookAheadSeconds"] == 4.0
    assert status["forecast"][0] == {"offsetSeconds": 2.0, "p50": 41.23, "pHigh": 47.0}
    condition = forecast_status.reliable_condition(found)
    assert (condition.status, condition.reason) == ("True", "ForecastBetterThanSeasonalNaive")
    untrusted = combine((MetricForecast("rps", None, state(False)),), AHEAD)
    assert forecast_status.forecast_status(untrusted)["summary"] == "Reactive"


def gauge(sample: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(sample, labels)


def check_trusted_gauges(labels: dict[str, str]) -> None:
    assert gauge("adaptive_forecast_value", **labels, metric="rps", quantile="0.8") == 58.98765
    assert gauge("adaptive_forecast_value", **labels, metric="rps", quantile="0.5") == 52.0
    assert gauge("adaptive_forecast_floor_replicas", **labels) == 6
    assert gauge("adaptive_forecast_lookahead_seconds", **labels) == 4.0
    assert gauge("adaptive_forecast_ceiling_replicas", **labels) is None  # scale-down off


def check_gaps_without_a_forecast(labels: dict[str, str]) -> None:
    assert gauge("adaptive_forecast_value", **labels, metric="rps", quantile="0.8") is None
    assert gauge("adaptive_forecast_floor_replicas", **labels) is None
    assert gauge("adaptive_forecast_ceiling_replicas", **labels) is None


def test_gauges_follow_the_forecast_and_leave_gaps_without_one() -> None:
    labels = {"namespace": "ns", "name": "web"}  # the service's labels
    trusted = combine((MetricForecast("rps", 6, state(True, 6)),), AHEAD)
    forecast_report.publish("ns", "web", 0.8, trusted)
    check_trusted_gauges(labels)
    lowering = combine((MetricForecast("rps", 6, down(True, 3)),), AHEAD)
    forecast_report.publish("ns", "web", 0.8, lowering)
    assert gauge("adaptive_forecast_ceiling_replicas", **labels) == 3
    none = combine((MetricForecast("rps", None, PredictiveState()),), AHEAD)
    forecast_report.publish("ns", "web", 0.8, none)
    check_gaps_without_a_forecast(labels)
    forecast_report.publish("ns", "web", 0.8, lowering)
    forecast_report.unpublish("ns", "web", ["rps"], 0.8)
    assert gauge("adaptive_forecast_ceiling_replicas", **labels) is None
    assert gauge("adaptive_forecast_lookahead_seconds", **labels) is None


def test_forget_frees_the_service() -> None:
    memory = scaling_observe.Memory()
    warmups = WarmUps()
    first = memory.forecasting(warmups)
    assert memory.forecasting(warmups) is first
    memory.drop_forecast()
    assert memory.forecasting(warmups) is not first
    memory.drop_forecast()
    assert forecast_status.disabled_condition().reason == "PredictiveDisabled"
