"""A forecast's refits run in the background through the runtime's fit gate, and no scaling
sync waits for one: the services' refits fall due together (their histories were backfilled
together), and awaited by each sync on the shared worker threads they queued ahead of every
other blocking call. Meanwhile the syncs keep the floor and state advised last."""

from __future__ import annotations

import asyncio
import math

import pytest

from adaptive_operator.adapters import telemetry
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.forecast_history import MetricHistory, capacity_rows
from adaptive_operator.domain.scaling.forecast_memory import WARMING_UP
from adaptive_operator.domain.scaling.predictive import LIGHT_ROWS, PredictiveAdvisor
from adaptive_operator.handlers import forecasts

from fakes import HeldFits

PERIOD = 2
SOURCE = ("http://prom", "sum(x)", float(PERIOD), 240)
SPEC = AdaptiveServiceSpec.model_validate({
    "scaleTargetRef": {"name": "web"}, "maxReplicas": 20, "syncPeriodSeconds": PERIOD,
    "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
    "predictive": {"enabled": True, "lookAheadSeconds": 6, "historySeconds": 240}})


def seasonal(i: int) -> float:
    return 50 + 30 * math.sin(2 * math.pi * i / 15) + (i * 7919 % 7) / 2


async def fitted(rows: int) -> tuple[forecasts.ServiceForecaster, forecasts.MetricForecaster,
                                     HeldFits]:
    """A service whose forecast has seen `rows` syncs, each refit done before the next sync."""
    fits = HeldFits()
    fits.release.set()
    service = forecasts.ServiceForecaster(fits)
    metric = service.metrics.setdefault("load", forecasts.MetricForecaster())
    metric.source = SOURCE
    metric.history = MetricHistory(0.0, PERIOD, capacity_rows(240, PERIOD))
    for i in range(rows):
        await sync(service, i)
        await service.settled()
    return service, metric, fits


async def sync(service: forecasts.ServiceForecaster, i: int) -> forecasts.Advice:
    found = await service.update(SPEC, "http://prom", (MetricReading("load", seasonal(i), 10),),
                                 (), i * PERIOD)
    return found.floor, found.lead.state


def behind(metric: forecasts.MetricForecaster, first: int) -> int:
    """Rows placed on the history that the advisor has not seen (a sync held up): its next
    advice is not light, so it refits in the background."""
    assert metric.history is not None
    for i in range(first, first + LIGHT_ROWS + 1):
        metric.history.record(i * PERIOD, seasonal(i))
    return first + LIGHT_ROWS + 1


def fits_counted(reason: str) -> float:
    return telemetry.FORECAST_FITS.labels(reason)._value.get()  # type: ignore[no-any-return]


async def test_a_due_refit_runs_in_the_background_and_the_syncs_keep_the_last_advice() -> None:
    service, metric, fits = await fitted(200)  # past the ring's 120 rows: the oldest are gone
    last = metric.advised
    assert last is not None and last[0] is not None  # a trusted floor to keep
    fits.release.clear()
    asked, counted = fits.asked, fits_counted("behind")
    i = behind(metric, 200)
    assert await sync(service, i) == last  # the sync did not wait for the refit
    assert fits_counted("behind") == counted + 1  # and said why it fits
    assert await sync(service, i + 1) == last  # still running: kept, and no second refit
    await asyncio.sleep(0)
    assert fits.asked == asked + 1
    fits.release.set()
    await service.settled()
    carried_on(last, metric.advised)
    assert await sync(service, i + 2) == metric.advised  # caught up: light again, in place
    assert fits.asked == asked + 1


async def test_a_refit_that_waited_for_its_turn_fits_the_rows_of_then() -> None:
    """The syncs while a refit queues at the gate add more rows than a light call takes. Fitted
    on the rows of when it was queued, the advisor came back that many rows behind and went
    through the gate again, as long as the others' fits kept the queue long: with 1,000
    services every forecast cycled through the gate for good (3.7 fits a second)."""
    service, metric, fits = await fitted(200)
    fits.release.clear()
    asked = fits.asked
    i = behind(metric, 200)
    await sync(service, i)  # the refit is queued
    for j in range(i + 1, i + 1 + 3 * LIGHT_ROWS):
        assert await sync(service, j) == metric.advised  # kept meanwhile
    fits.release.set()
    await service.settled()
    assert fits.asked == asked + 1
    await sync(service, i + 1 + 3 * LIGHT_ROWS)
    assert metric.refitting is None or metric.refitting.done()
    assert fits.asked == asked + 1  # light: no second round through the gate


def carried_on(before: forecasts.Advice, after: forecasts.Advice | None) -> None:
    """A new advice from the same engine, carried on over the rows since (not a new engine on
    too little history)."""
    assert after is not None and after[1] is not before[1]
    assert before[1].reliable and after[1].reliable
    assert after[1].model == before[1].model and after[0] is not None


async def test_a_new_advisor_gives_no_floor_until_its_first_fit() -> None:
    fits = HeldFits()
    service = forecasts.ServiceForecaster(fits)
    metric = service.metrics.setdefault("load", forecasts.MetricForecaster())
    metric.source, metric.history = SOURCE, MetricHistory(0.0, PERIOD, capacity_rows(240, PERIOD))
    floor, state = await sync(service, 0)
    assert floor is None and state.reason == WARMING_UP
    fits.release.set()
    await service.settled()
    assert metric.advised is not None and metric.advised[1].reason == "too little history"


async def test_a_refit_of_an_advisor_replaced_meanwhile_is_dropped() -> None:
    service, metric, fits = await fitted(100)
    fits.release.clear()
    i = behind(metric, 100)
    await sync(service, i)
    running = metric.refitting
    assert running is not None and not running.done()
    # Another query: the history is read again, the old advisor and its advice dropped.
    assert metric.observe(("http://prom", "sum(y)", float(PERIOD), 240),
                          MetricReading("load", 1.0, 10), i * PERIOD,
                          lambda: asyncio.create_task(asyncio.sleep(0))) == WARMING_UP
    fits.release.set()
    await running
    assert metric.advisor is None and metric.advised is None


async def test_the_refit_under_way_is_dropped_with_the_service() -> None:
    service, metric, fits = await fitted(100)
    fits.release.clear()
    await sync(service, behind(metric, 100))
    running = metric.refitting
    service.stop()
    with pytest.raises(asyncio.CancelledError):
        await running  # type: ignore[misc]


async def test_a_refit_that_fails_is_logged_and_the_next_sync_starts_a_new_advisor(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    service, metric, _ = await fitted(100)
    broken = metric.advisor
    last = metric.advised

    def fails(*_: object) -> int:
        raise FloatingPointError("the model diverged")

    monkeypatch.setattr(broken, "advise", fails)
    i = behind(metric, 100)
    assert await sync(service, i) == last
    await service.settled()
    assert "forecast refit failed" in capsys.readouterr().out
    assert metric.advisor is None and metric.advised == last
    await sync(service, i + 1)
    assert isinstance(metric.advisor, PredictiveAdvisor) and metric.advisor is not broken


async def test_a_new_look_ahead_restarts_the_forecast_and_says_so(
        capsys: pytest.CaptureFixture[str]) -> None:
    service, metric, _ = await fitted(100)
    first = metric.advisor
    capsys.readouterr()
    longer = SPEC.model_copy(update={"predictive": SPEC.predictive.model_copy(  # type: ignore[union-attr]
        update={"look_ahead_seconds": 10})})
    await service.update(longer, "http://prom", (MetricReading("load", seasonal(100), 10),),
                         (), 100 * PERIOD)
    assert metric.advisor is not first
    out = capsys.readouterr().out
    assert "forecast restarted" in out and "was=6" in out and "look_ahead=10" in out
    await service.update(longer, "http://prom", (MetricReading("load", seasonal(101), 10),),
                         (), 101 * PERIOD)
    assert "forecast restarted" not in capsys.readouterr().out  # once, not every sync


async def test_a_new_advisor_whose_fit_waited_while_the_ring_moved_on_fits_what_is_kept(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A new advisor reads every row from its first: with the ring full, the rows the syncs
    added while its fit queued pushed that first row out, and the fit, reading the rows of
    when its turn came, failed (IndexError: row 5 is not kept)."""
    service, metric, fits = await fitted(200)  # the ring (120 rows) full: rows drop out
    longer = SPEC.model_copy(update={"predictive": SPEC.predictive.model_copy(  # type: ignore[union-attr]
        update={"look_ahead_seconds": 10})})
    fits.release.clear()
    asked = fits.asked
    for i in range(200, 205):
        await service.update(longer, "http://prom", (MetricReading("load", seasonal(i), 10),),
                             (), i * PERIOD)
    fits.release.set()
    await service.settled()
    assert "forecast refit failed" not in capsys.readouterr().out
    assert metric.advisor is not None and metric.advised is not None
    assert metric.advised[1].reason != WARMING_UP
    await service.update(longer, "http://prom", (MetricReading("load", seasonal(205), 10),),
                         (), 205 * PERIOD)
    assert fits.asked == asked + 1  # the next sync continued it in place
