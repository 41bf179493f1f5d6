"""The backfilled health rows keep the live rows' cadence, one per sync period of time, so a
metric's cycle spans the same rows in both and seasonal differencing compares each row with the
same phase one cycle earlier. The backfill used to drop a step repeating the previous one: with
a scrape slower than the sync its rows were one per scrape, and a scrape gap cut a cycle short
(the scale benchmark's 5,000 services: 528 healthy ones flagged their cycle)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.anomaly import DetectorSettings
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec
from adaptive_operator.domain.healing.watch import (
    Watcher,
    add_row,
    backfilled,
    fit_rows,
    new_watcher,
    score,
)

SYNC = 15
Row = dict[str, float]


LIVE = detector_settings_from_spec(HealingSpec(enabled=True))


def watcher(settings: DetectorSettings = LIVE) -> Watcher:
    return new_watcher({"errors": "q1", "latency": "q2"}, {"latency": "latency"}, settings)


def cycle(seconds: float, noise: float, seed: int) -> Callable[[float], Row]:
    """A healthy sawtooth in the latency (a collector's cycle), noise in the errors."""
    rng = np.random.default_rng(seed)
    return lambda t: {"latency": 0.1 * (1.0 + (t % seconds) / seconds) + rng.normal(0, noise),
                      "errors": 0.01 + rng.normal(0.0, 0.001)}


def run(read: Callable[[float], Row], backfill_end: int, fit_at: int, syncs: int,
        outage: range = range(0), every: float = SYNC,
        unscraped: range = range(0)) -> tuple[dict[str, int], int]:
    """Backfill on the sync grid up to `backfill_end` (no value at the steps in `unscraped`,
    counted back from its end: 1 is the last), then live syncs `every` s (each reads what an
    instant query returns then; the syncs numbered in `outage` read nothing), a fit once
    `fit_at` rows are in: the periods differenced and how many syncs were flagged."""
    periods, flags = flagged_syncs(read, backfill_end, fit_at, syncs, outage, every, unscraped)
    return periods, len(flags)


def flagged_syncs(read: Callable[[float], Row], backfill_end: int, fit_at: int, syncs: int,
                  outage: range = range(0), every: float = SYNC, unscraped: range = range(0),
                  settings: DetectorSettings = LIVE) -> tuple[dict[str, int], list[int]]:
    """`run`, with the detector's `settings`: the periods differenced and the syncs flagged."""
    w = watcher(settings)
    grid = range(0, backfill_end + 1, SYNC)

    def column(name: str) -> list[float | None]:
        values = [read(t)[name] for t in grid]
        return [None if len(grid) - i in unscraped else v for i, v in enumerate(values)]

    backfilled(w, {name: column(name) for name in ("errors", "latency")})
    flags, t = [], float(backfill_end)
    for sync in range(syncs):
        t += every
        if sync in outage:
            continue
        add_row(w, read(t), t, SYNC)
        if not w.detector.fitted and len(w.history) >= fit_at:
            w.detector.fit(fit_rows(w))
        verdict = score(w, t)
        if verdict is not None and verdict.is_anomaly:
            flags.append(sync)
    return w.detector.differenced, flags


@pytest.mark.parametrize("scrape", [30, 60])
def test_a_scrape_slower_than_the_sync_keeps_the_cycle_in_sync_rows(scrape: int) -> None:
    """A 30-minute cycle scraped every 30 or 60 s, synced every 15 s: 120 rows a cycle in the
    backfill as in the live rows. Before, one row per scrape in the backfill (60 or 30 a
    cycle) and 5 to 60 of 480 healthy syncs flagged (seeds 0-5); now 0 or 1 (one chance flag
    in 2,880 syncs over those seeds, at a 30-s scrape)."""
    sample = cycle(1800.0, 0.005, seed=0)
    scrapes = {t: sample(t) for t in range(0, 6 * 3600 + 1, scrape)}
    periods, flags = run(lambda t: scrapes[int(t) - int(t) % scrape], 4 * 3600, 0, 480)
    assert periods == {"latency": 120}
    assert flags <= 1


@pytest.mark.parametrize("seed", range(4))
def test_a_scrape_gap_in_the_backfill_keeps_the_cycle_whole(seed: int) -> None:
    """A 7.5-minute cycle scraped at each sync, but 5 steps before the backfill's end repeat
    the sample before them (a 75-s gap the range query fills): the cycle keeps its 30 rows
    and the healthy rows after it are not flagged (2 to 10 flags in 150 syncs before)."""
    sample = cycle(450.0, 0.01, seed)
    end = 3000 + SYNC * seed
    values = {t: sample(t) for t in range(0, end + 1, SYNC)}
    gap = range(end - 7 * SYNC, end - 2 * SYNC, SYNC)
    for t in gap:
        values[t] = values[gap[0] - SYNC]
    periods, flags = run(lambda t: values.get(int(t)) or sample(t), end, 204, 150)
    assert periods == {"latency": 30}
    assert flags == 0


@pytest.mark.parametrize("outage", [10, 25, 40, 80])
def test_the_rows_after_an_outage_keep_their_place_in_the_cycle(outage: int) -> None:
    """The metrics unreadable for `outage` syncs (Prometheus down, beyond its 5-minute
    lookback) in a 7.5-minute cycle: the syncs after it add the rows they missed, so each row
    is still differenced with the same phase a cycle earlier. Without them: 14, 9, 14 and 13
    healthy syncs flagged over seeds 0-5 (gaps 10, 25, 40, 80); now none."""
    assert flags_over_seeds(outage=range(100, 100 + outage)) == 0


def test_a_gap_longer_than_a_quarter_of_the_history_is_not_made_up() -> None:
    w, sample = backfilled_watcher()
    w.detector.fit(fit_rows(w))
    add_row(w, sample(3015), 3015, SYNC)
    before = len(w.history)
    add_row(w, sample(3030 + SYNC), 3030 + SYNC, SYNC)  # one sync missed: one row stands in
    assert len(w.history) == before + 2
    assert w.history.rows["latency"][-2] == w.history.rows["latency"][-32]  # a cycle earlier
    late = 3045 + SYNC * (w.history.limit // 4 + 2)
    add_row(w, sample(late), late, SYNC)  # too long a gap: the row alone
    assert len(w.history) == min(w.history.limit, before + 3)


@pytest.mark.parametrize(("seed", "unscraped"), [(1, range(1, 21)), (5, range(3, 13))])
def test_a_gap_at_the_backfills_end_keeps_the_live_rows_in_the_cycle(
        seed: int, unscraped: range) -> None:
    """Prometheus and the operator back together after an outage longer than Prometheus's
    5-minute lookback: the backfill's last steps have no value. Dropped, the live rows
    followed the last row read before the gap, every one a gap's length off its phase: 9 and
    6 of 300 healthy syncs flagged here; made up as the live rows make up a sync that read
    nothing, none. Over three gaps (20 rows at the end, 10 ending 2 before it, 8 at it): 78
    flags before and 3 after on seeds 0-5, 141 and 13 on seeds 6-17 (one seed flags 10 syncs
    with a 10-row gap where dropping flagged 1: the first cycle's live rows are differenced
    with made-up rows)."""
    sample = cycle(450.0, 0.01, seed)
    periods, flags = run(sample, 4 * 3600, 0, 300, unscraped=unscraped)
    assert periods == {"latency": 30}
    assert flags == 0


@pytest.mark.parametrize("every", [15.8, 16.5])
def test_syncs_running_late_keep_a_row_per_period_of_time(every: float) -> None:
    """Syncs 15.8 or 16.5 s apart for a 15-s period (5,000 services on one core): one row a
    sync fell behind time, the 7.5-minute cycle spanned 28 rows live against 30 in the
    backfill, and 17 or 37 healthy syncs were flagged over seeds 0-5 (433 of 666 services
    whose latency was differenced flagged it at 5,000). The clock now adds the rows due."""
    assert flags_over_seeds(every=every) == 0


def flags_over_seeds(outage: range = range(0), every: float = SYNC) -> int:
    """The healthy syncs flagged in 300 after a backfill, over seeds 0-5 of a 7.5-minute
    cycle (30 rows, differenced)."""
    flags = 0
    for seed in range(6):
        periods, flagged = run(cycle(450.0, 0.01, seed), 3000, 0, 300, outage, every)
        assert periods == {"latency": 30}
        flags += flagged
    return flags


def backfilled_watcher() -> tuple[Watcher, Callable[[float], Row]]:
    """A watcher backfilled with 50 minutes of a 7.5-minute cycle, and the cycle."""
    w, sample = watcher(), cycle(450.0, 0.01, 0)
    backfilled(w, {name: [sample(t)[name] for t in range(0, 3001, SYNC)]
                   for name in ("errors", "latency")})
    return w, sample


def test_a_row_left_out_for_a_value_that_is_not_a_number_is_made_up_by_the_next_sync() -> None:
    w, sample = backfilled_watcher()
    add_row(w, sample(3015), 3015, SYNC)
    before = len(w.history)
    add_row(w, {"errors": float("nan"), "latency": 0.1}, 3030, SYNC)
    assert len(w.history) == before and w.unscored == 1 and w.rows_since_fit == 1
    add_row(w, sample(3045), 3045, SYNC)
    assert len(w.history) == before + 2 and w.unscored == 3  # the row due at 3030 made up
