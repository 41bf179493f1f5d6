"""One metric's forecast memory (domain.scaling.forecast_memory): readings wait for the backfill
and land on the history in order; the advisor is rebuilt only when what it was made for changed."""

from __future__ import annotations

import math

from adaptive_operator.api.base import MAX_HISTORY_ROWS, MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.common.times import aligned, grid_window
from adaptive_operator.domain.scaling.forecast_history import MetricHistory, joined
from adaptive_operator.domain.scaling.forecast_memory import (
    MAX_ERROR_ROWS,
    WARMING_UP,
    FitFor,
    MetricMemory,
    advisor_settings,
    history_rows,
    service_look_ahead,
)
from adaptive_operator.domain.scaling.lookahead import LookAhead
from adaptive_operator.domain.scaling.predictive import PredictiveSettings

SOURCE = ("http://prom", "sum(x)", 10.0, 600)


def rows(history: MetricHistory) -> list[float | None]:
    return [history.value(row) for row in range(history.first_kept, history.total)]


def test_a_new_source_waits_for_its_backfill_and_keeps_the_readings_meanwhile() -> None:
    memory = MetricMemory()
    assert memory.take(SOURCE, 100.0, 1.0, warming=False) == WARMING_UP
    assert memory.take(SOURCE, 110.0, 2.0, warming=True) == WARMING_UP
    assert memory.source == SOURCE and memory.pending == [(100.0, 1.0), (110.0, 2.0)]
    view = memory.backfilled(MetricHistory(70.0, 10.0, 8), "", FitFor(PredictiveSettings(),
                                                                       20.0, 5.0))
    assert memory.pending == [] and memory.history is not None and memory.advisor is not None
    assert rows(memory.history) == [None, None, None, 1.0, 2.0]  # rows at 70..110
    assert len(view) == 5 and memory.made_for == (PredictiveSettings(), 20.0)
    assert memory.take(SOURCE, 120.0, 3.0, warming=False) is None  # placed, no backfill due
    assert rows(memory.history)[-1] == 3.0


def test_a_failed_backfill_is_said_once_and_the_next_sync_starts_over() -> None:
    memory = MetricMemory(source=SOURCE, failure="connection refused")
    assert memory.take(SOURCE, 100.0, 1.0, warming=False) == (
        "history backfill failed: connection refused")
    assert memory.failure == "" and memory.pending == [(100.0, 1.0)]
    assert memory.take(SOURCE, 110.0, None, warming=False) == WARMING_UP


def test_another_source_drops_the_history_and_the_advisor() -> None:
    memory = MetricMemory(source=SOURCE)
    memory.backfilled(MetricHistory(0.0, 10.0, 8), "ignored 1 NaN sample",
                      FitFor(PredictiveSettings(), 20.0, 5.0))
    other = (*SOURCE[:3], 1200)
    assert memory.take(other, 100.0, 4.0, warming=False) == WARMING_UP
    assert (memory.source, memory.history, memory.advisor) == (other, None, None)
    assert memory.pending == [(100.0, 4.0)]


def test_the_advisor_is_rebuilt_on_the_kept_rows_only_when_its_settings_change() -> None:
    memory = MetricMemory(history=MetricHistory(0.0, 10.0, 4))
    for at in range(0, 60, 10):
        memory.history.record(float(at), float(at))  # type: ignore[union-attr]
    first, view = memory.advisor_for(PredictiveSettings(), 20.0)
    assert memory.base == 2 and len(view) == 4
    assert memory.advisor_for(PredictiveSettings(), 20.0)[0] is first
    second = memory.advisor_for(PredictiveSettings(quantile=0.9), 20.0)[0]
    assert second is not first
    assert memory.advisor_for(PredictiveSettings(quantile=0.9), 30.0)[0] is not second


def test_the_history_and_the_error_window_are_bounded() -> None:
    assert history_rows(600, 10.0) == 60
    assert history_rows(10**9, 1.0) == MAX_HISTORY_ROWS
    spec = PredictiveSpec.model_validate({"historySeconds": 86400, "quantile": 0.9})
    settings = advisor_settings(spec, 60.0)
    assert (settings.quantile, settings.history_seconds) == (0.9, 86400.0)
    assert settings.error_window_seconds == PredictiveSettings().error_window_seconds
    assert advisor_settings(spec, 5.0).error_window_seconds == MAX_ERROR_ROWS * 5.0


def test_the_look_ahead_is_the_specs_or_learned_and_at_most_its_rows() -> None:
    spec = PredictiveSpec.model_validate({"lookAheadSeconds": 120})
    assert service_look_ahead(spec, (), 15.0, None) == LookAhead(120.0, "spec")
    learned = service_look_ahead(PredictiveSpec(), (40.0, 50.0, 60.0), 15.0, None)
    assert learned == LookAhead(75.0, "learned from 3 pods")
    slow = service_look_ahead(PredictiveSpec(), (10**6,), 1.0, None)
    assert slow.seconds == MAX_LOOK_AHEAD_ROWS and slow.source.endswith("capped at 360 sync "
                                                                        "periods")


def test_a_history_window_ends_on_the_step_grid() -> None:
    assert aligned(1234.5, 60.0) == 1200.0
    assert grid_window(1234.5, 60.0, 3) == (1080.0, 1200.0)
    assert grid_window(1200.0, 15.0, 1) == (1200.0, 1200.0)
    start, end = grid_window(1e9 + 7.0, 15.0, 5761)
    assert math.isclose(end - start, 5760 * 15.0) and end % 15.0 == 0


def test_an_upstreams_history_is_extended_while_its_source_holds() -> None:
    memory = MetricMemory()
    assert not memory.extend(SOURCE, 100.0, 1.0)  # nothing yet: a backfill is due
    memory.history = MetricHistory(80.0, 10.0, 8)
    assert memory.extend(SOURCE, 100.0, 1.0) and rows(memory.history) == [None, None, 1.0]
    other = (*SOURCE[:3], 1200)
    assert not memory.extend(other, 110.0, 2.0)
    assert memory.source == other and memory.history is None and memory.advisor is None


def test_a_backfill_joins_its_answers_and_counts_what_they_left_out() -> None:
    history, ignored = joined(70.0, 10.0, 4, [([1.0, None], {"NaN": 1}),
                                              ([3.0, 4.0, 5.0], {"NaN": 2, "negative": 1})])
    assert rows(history) == [None, 3.0, 4.0, 5.0] and history.total == 5
    assert history.origin == 70.0 and dict(ignored) == {"NaN": 3, "negative": 1}
    assert joined(0.0, 1.0, 2, [])[0].total == 0
