"""What one service's healing daemon keeps between syncs, and the detector's verdict on it.

In memory only (rebuilt, and backfilled from Prometheus, when the daemon starts): the health
history, the fitted detector, the incident being tracked and which Events were already posted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, DetectorSettings
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.inputs import (
    LOAD_BASELINE_ROWS,
    HealthHistory,
    Incident,
    RowClock,
    load_signals,
    track_incident,
)
from adaptive_operator.domain.healing.ladder import LoadSignals

if TYPE_CHECKING:  # the task is the handler's; the domain only keeps it between syncs
    from asyncio import Task

RANDOM_STATE = 0  # the detector is seeded: the same history gives the same verdicts
CATCH_UP_ROWS = 16  # rows behind the last verdict still scored one by one
LOAD_ROWS = 4 * LOAD_BASELINE_ROWS  # enough for the saturation signal's comparison


@dataclass
class Watcher:
    """What one service's daemon keeps between syncs (in memory, rebuilt on restart)."""

    metrics: dict[str, str]
    roles: dict[str, str]  # metric -> role (saturation reads latency and cpu)
    settings: DetectorSettings
    history: HealthHistory
    detector: AnomalyDetector
    rows_since_fit: int = 0
    unscored: int = 0  # rows added since the last verdict
    clock: RowClock = field(default_factory=RowClock)  # the live rows against time
    incident: Incident | None = None
    reported: set[str] = field(default_factory=set)
    # The scaling metrics' totals, one row per sync: the load behind a saturation verdict.
    load: HealthHistory = field(default_factory=lambda: HealthHistory(LOAD_ROWS))
    status: dict[str, Any] | None = None  # status.healing as this process last wrote it
    # The refit under way, if any (the handler's background task: fits run off the syncs).
    fitting: Task[None] | None = None

    @property
    def window_rows(self) -> int:
        s = self.settings
        return s.baseline_rows + s.persistence_n + s.cooldown_rows + s.record_rows


def new_watcher(metrics: dict[str, str], roles: dict[str, str],
                settings: DetectorSettings) -> Watcher:
    """An empty watcher whose history holds what fitting and one verdict need."""
    limit = settings.train_rows + settings.baseline_rows + (
        settings.record_rows + settings.cooldown_rows)
    return Watcher(metrics, roles, settings, HealthHistory(limit),
                   AnomalyDetector(settings, RANDOM_STATE))


def watches(watcher: Watcher | None, healing: HealingSpec) -> bool:
    """The watcher is of these metrics in these roles (else a new one is due)."""
    return watcher is not None and (watcher.metrics, watcher.roles) == (
        healing.metrics, healing.roles_by_name())


def backfilled(watcher: Watcher, series: Mapping[str, Sequence[float | None]]) -> None:
    """The history from range-query answers, the rows the syncs appended meanwhile kept
    after it."""
    live = watcher.history.rows
    watcher.history.backfill(series)
    for index in range(min((len(values) for values in live.values()), default=0)):
        watcher.history.append({name: values[index] for name, values in live.items()})


def add_row(watcher: Watcher, row: dict[str, float], now: float, step: float) -> None:
    """This sync's health row (read at `now`, syncs every `step` s), one more towards the next
    refit, after rows standing in for the rows due by the clock that no sync added
    (`HealthHistory.fill`): the rows stay one per `step` of time, as the backfill's are. A gap
    longer than a quarter of the history is not made up (the rows would be more made up than
    read): the clock starts again from this row."""
    missed = watcher.clock.missed(now, step)
    if missed > watcher.history.limit // 4:
        watcher.clock.restart(now)
    else:
        watcher.unscored += watcher.history.fill(missed, watcher.detector.differenced)
        watcher.clock.rows += missed
    if watcher.history.append(row):  # else no row: the next sync makes it up
        watcher.clock.rows += 1
        watcher.unscored += 1
        watcher.rows_since_fit += 1


def refit_due(watcher: Watcher) -> bool:
    """The detector is to be fitted now (on schedule, once enough rows are in)."""
    due = not watcher.detector.fitted or watcher.rows_since_fit >= watcher.settings.refit_every
    return due and len(watcher.history) >= watcher.settings.rows_to_fit


def fit_rows(watcher: Watcher) -> dict[str, list[float]]:
    """A copy of the rows to fit on (the syncs go on appending while a fit runs), counted as
    fitted: the rows after them count towards the next refit."""
    watcher.rows_since_fit = 0
    return {name: list(values) for name, values in watcher.history.rows.items()}


def fitted_detector(settings: DetectorSettings, rows: dict[str, list[float]],
                    window_rows: int) -> AnomalyDetector:
    """A detector fitted on `rows` (a worker thread's work), with their last window already
    scored: the next sync's window is that one plus a row, so its verdict is one row's work
    (`score_latest`), instead of the whole window scored again on the event loop."""
    detector = AnomalyDetector(settings, RANDOM_STATE).fit(rows)
    detector.score({name: values[-window_rows:] for name, values in rows.items()})
    return detector


def score(watcher: Watcher, now: float) -> AnomalyVerdict | None:
    """The verdict of the latest row by the detector fitted so far (None before the first
    fit), kept open by the incident."""
    if not watcher.detector.fitted:
        return None
    verdict = _newest_verdict(watcher)
    watcher.incident, verdict = track_incident(watcher.incident, verdict, now,
                                               watcher.settings.min_deviation_z)
    return verdict


def _newest_verdict(watcher: Watcher) -> AnomalyVerdict:
    """The newest row's verdict, the rows added since the last verdict (made up for syncs that
    added none) scored one by one before it: each continues the last window by a row
    (`score_latest`: 0.63 ms for a late sync's two rows at 2 metrics), where a window two rows
    on was scored whole again (13.8 ms, `benchmarks/scale_hotspots.py`: at 5,000 services, with
    a row made up every ten syncs, half a core more). More
    than `CATCH_UP_ROWS` behind (a first verdict, an outage), it is scored whole."""
    behind, watcher.unscored = watcher.unscored, 0
    size, columns, end = watcher.window_rows, watcher.history.rows, len(watcher.history)
    for back in range(behind - 1 if behind <= CATCH_UP_ROWS else 0, 0, -1):
        watcher.detector.score_latest(
            {name: values[max(0, end - back - size): end - back]
             for name, values in columns.items()})
    return watcher.detector.score_latest(watcher.history.tail(size))


def saturation(watcher: Watcher) -> LoadSignals | None:
    return load_signals(watcher.load.rows, watcher.history.rows, watcher.settings.persistence_n,
                        watcher.roles)
