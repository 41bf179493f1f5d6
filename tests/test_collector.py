"""The garbage collector's settings and the pause counter on /metrics."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from adaptive_operator.adapters import collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks


def test_the_timer_adds_each_collections_time_to_its_generation() -> None:
    ticks = iter([10.0, 10.5, 20.0, 20.25])
    added: list[tuple[int, float]] = []
    timer = collector.PauseTimer(lambda gen, s: added.append((gen, s)), clock=lambda: next(ticks))
    timer("start", {"generation": 2})
    timer("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    timer("start", {"generation": 0})
    timer("stop", {"generation": 0, "collected": 3, "uncollectable": 0})
    assert added == [(2, 0.5), (0, 0.25)]


@pytest.mark.usefixtures("restored_gc")
def test_configure_sets_the_young_generation_and_counts_a_full_collection() -> None:
    middle, old = gc.get_threshold()[1:]
    collector.configure(young=12_345)
    collector.configure(young=12_345)  # a second call replaces the timer, no double count
    assert gc.get_threshold() == (12_345, middle, old)
    assert sum(isinstance(c, collector.PauseTimer) for c in gc.callbacks) == 1
    before = _full_collection_seconds()
    gc.collect()
    assert _full_collection_seconds() > before


def _full_collection_seconds() -> float:
    value = REGISTRY.get_sample_value("adaptive_gc_pause_seconds_total", {"generation": "2"})
    return value or 0.0
