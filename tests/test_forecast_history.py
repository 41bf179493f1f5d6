"""The operator's forecasting inputs: history on the sync grid, range-query chunks, look-ahead."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_operator.domain.scaling.forecast_history import (
    MAX_POINTS_PER_QUERY,
    MetricHistory,
    capacity_rows,
    chunk_ranges,
)
from adaptive_operator.domain.scaling.lookahead import DEFAULT_STARTUP_SECONDS, look_ahead
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings

# --- chunking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "step", "limit", "expected"),
    [
        pytest.param(0, 40, 10, 11_000, [(0, 40)], id="short-range-is-one-query"),
        pytest.param(0, 90, 10, 4, [(0, 30), (40, 70), (80, 90)], id="ten-points-in-fours"),
        pytest.param(0, 70, 10, 4, [(0, 30), (40, 70)], id="exact-multiple-no-empty-tail"),
        pytest.param(5, 5, 15, 4, [(5, 5)], id="single-point"),
        pytest.param(10, 0, 15, 4, [], id="end-before-start-is-nothing"),
    ],
)
def test_chunk_ranges(start: float, end: float, step: float, limit: int,
                      expected: list[tuple[float, float]]) -> None:
    assert chunk_ranges(start, end, step, limit) == expected


def test_fourteen_days_at_fifteen_seconds_needs_eight_queries() -> None:
    rows = capacity_rows(14 * 86400, 15)
    ranges = chunk_ranges(0, (rows - 1) * 15, 15)
    assert rows == 80_640 and len(ranges) == 8


@given(st.integers(1, 3_000), st.integers(1, 300), st.integers(1, 1_200))
def test_chunks_cover_every_grid_point_once_within_the_limit(count: int, step: int,
                                                             limit: int) -> None:
    ranges = chunk_ranges(1000, 1000 + (count - 1) * step, step, limit)
    points = [round((s - 1000) / step) + i for s, e in ranges
              for i in range(round((e - s) / step) + 1)]
    assert points == list(range(count))
    assert all(round((e - s) / step) + 1 <= limit for s, e in ranges)


def test_chunk_ranges_refuses_a_zero_step() -> None:
    with pytest.raises(ValueError):
        chunk_ranges(0, 10, 0)
    assert MAX_POINTS_PER_QUERY == 11_000


# --- history on the grid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param([(10, 1.0), (12, 2.0), (14, 3.0)], [1.0, 2.0, 3.0], id="on-time-syncs"),
        pytest.param([(10, 1.0), (12.9, 2.0)], [1.0, 2.0], id="late-within-half-a-step"),
        pytest.param([(10, 1.0), (16, 2.0)], [1.0, None, None, 2.0],
                     id="slow-sync-leaves-skipped-rows-empty"),
        pytest.param([(10, 1.0), (10.8, 9.0), (12, 2.0)], [1.0, 2.0],
                     id="early-sync-never-overwrites-a-consumed-row"),
        pytest.param([(10, None), (12, 2.0)], [None, 2.0], id="unreadable-metric-is-a-gap"),
    ],
)
def test_record_places_readings_on_the_grid(readings: list[tuple[float, float | None]],
                                            expected: list[float | None]) -> None:
    history = MetricHistory(origin=10, step=2, capacity=100)
    for now, value in readings:
        history.record(now, value)
    assert list(history.view(0)) == expected


def test_backfill_then_live_rows_continue_the_grid() -> None:
    history = MetricHistory.backfilled(origin=100, step=15, capacity=4, values=[1.0, None, 3.0])
    assert history.record(now=145.0, value=4.0) == 1
    assert history.record(now=176.0, value=6.0) == 2
    assert history.total == 6 and history.first_kept == 2
    assert list(history.view(2)) == [3.0, 4.0, None, 6.0]


def test_rows_out_of_the_ring_are_refused_not_invented() -> None:
    history = MetricHistory.backfilled(0, 1, 3, [1.0, 2.0, 3.0, 4.0])
    view = history.view(0)
    assert len(view) == 4 and view[-1] == 4.0 and view[1:] == [2.0, 3.0, 4.0]
    with pytest.raises(IndexError):
        view[0]
    with pytest.raises(IndexError):
        view[4]
    with pytest.raises(ValueError):
        MetricHistory(0, 0, 3)


@given(st.integers(1, 50), st.lists(st.floats(0, 1e6), max_size=200))
def test_memory_is_bounded_by_the_capacity(capacity: int, values: list[float]) -> None:
    history = MetricHistory.backfilled(0, 1, capacity, values)
    assert history.nbytes() == 8 * capacity
    assert history.kept == min(len(values), capacity)
    assert list(history.view(history.first_kept)) == values[len(values) - history.kept:]


def test_an_advisor_reads_a_bounded_history_as_if_it_were_whole() -> None:
    """Fed through the ring (smaller than the run), the advisor gives the same floors as when fed
    the whole list: it only ever reads the rows it has not seen."""
    values = [50 + 30 * math.sin(2 * math.pi * i / 12) + (i * 7919 % 5) for i in range(150)]
    settings = PredictiveSettings(history_seconds=60, min_history_points=24)
    whole, ringed = PredictiveAdvisor(settings), PredictiveAdvisor(settings)
    history = MetricHistory(0, 1, capacity_rows(60, 1))
    floors_whole, floors_ringed = [], []
    for i, value in enumerate(values):
        history.record(float(i), value)
        floors_whole.append(whole.advise(values[: i + 1], 1, 3, 10))
        floors_ringed.append(ringed.advise(history.view(0), 1, 3, 10))
    assert floors_ringed == floors_whole
    assert any(f is not None for f in floors_whole)


# --- look-ahead -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "samples", "previous", "seconds", "source"),
    [
        pytest.param(150, [3.0], None, 150, "spec", id="spec-wins-over-pods"),
        pytest.param(None, [], None, DEFAULT_STARTUP_SECONDS + 15, "default",
                     id="no-ready-pod-uses-the-default"),
        pytest.param(None, [40.0, 44.0, 9000.0], None, 60, "learned from 3 pods",
                     id="median-ignores-a-pod-that-flapped-days-later"),
        pytest.param(None, [0.0], None, 15, "learned from 1 pods",
                     id="instant-pods-still-wait-one-sync"),
        pytest.param(None, [31.0], 60, 60, "learned from 1 pods",
                     id="small-change-keeps-the-previous-look-ahead"),
        pytest.param(None, [100.0], 60, 120, "learned from 1 pods",
                     id="large-change-is-taken"),
        pytest.param(None, [-5.0, math.nan], None, DEFAULT_STARTUP_SECONDS + 15, "default",
                     id="clock-skew-samples-ignored"),
    ],
)
def test_look_ahead(configured: float | None, samples: list[float], previous: float | None,
                    seconds: float, source: str) -> None:
    found = look_ahead(configured, samples, 15, previous)
    assert (found.seconds, found.source) == (seconds, source)


def test_a_frozen_copy_keeps_its_rows_while_the_history_goes_on() -> None:
    history = MetricHistory.backfilled(0.0, 1.0, 4, [1.0, 2.0, 3.0, 4.0, 5.0])
    frozen = history.frozen()
    for value in (6.0, 7.0, 8.0):
        history.append(value)
    view = frozen.view(frozen.first_kept)
    assert (frozen.total, frozen.first_kept) == (5, 1)  # rows keep their absolute numbers
    assert list(view) == [2.0, 3.0, 4.0, 5.0]
    assert [history.value(row) for row in range(4, 8)] == [5.0, 6.0, 7.0, 8.0]
    with pytest.raises(IndexError):
        frozen.value(5)  # not there when it was frozen
