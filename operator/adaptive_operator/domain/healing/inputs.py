"""What the healing daemon observes, turned into the plain inputs of `decide_healing`.

Pure translations (no I/O, no clock: `now` is a parameter): the ledger annotation's JSON, pod
and ReplicaSet manifests (as dicts), the bounded in-memory history of health metrics, and the
incident that keeps an anomaly open after the detector's one-shot flag.

Why an incident: the detector flags the first row of an anomaly and then cools down, so that
one incident is one detection. Healing needs to know whether the workload is *still* unhealthy
(to verify an action), so the metrics that deviated at the flag are tracked against the
baseline frozen at that moment until they come back.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from adaptive_operator.domain.common.pods import is_live
from adaptive_operator.domain.common.times import parse_time
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict
from adaptive_operator.domain.healing.ladder import (
    Action,
    LedgerEntry,
    LoadSignals,
    Outcome,
    PodHealth,
    RolloutInfo,
)

LEDGER_LIMIT = 50  # entries kept in the annotation: enough for every rail's look-back
CRASH_RESTARTS = 5  # restarts after which a pod counts as crash-looping even while running
REVISION = "deployment.kubernetes.io/revision"
# The template annotation `kubectl rollout restart` (and our RolloutRestart) stamps.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


# --- the ledger annotation ----------------------------------------------------------------


class LedgerError(ValueError):
    """The ledger annotation cannot be read; healing must not act on it."""


def ledger_from_json(text: str | None) -> list[LedgerEntry]:
    if not text:
        return []
    try:
        raw = json.loads(text)
        return [_entry(item) for item in raw]
    except (ValueError, TypeError, KeyError) as err:
        raise LedgerError(f"the healing ledger annotation is damaged: {err}") from err


def _entry(item: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        id=str(item["id"]), action=Action(item["action"]), at=float(item["at"]),
        outcome=Outcome(item["outcome"]), target_revision=item.get("targetRevision"),
        from_revision=item.get("fromRevision"), pods=tuple(item.get("pods", ())),
        replicas=item.get("replicas"), pod_uids=tuple(item.get("podUids", ())))


def ledger_to_json(ledger: Sequence[LedgerEntry]) -> str:
    kept = sorted(ledger, key=lambda e: e.at)[-LEDGER_LIMIT:]
    return json.dumps([_item(entry) for entry in kept], separators=(",", ":"))


def _item(entry: LedgerEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"id": entry.id, "action": entry.action.value, "at": entry.at,
                            "outcome": entry.outcome.value}
    optional = {"targetRevision": entry.target_revision, "fromRevision": entry.from_revision,
                "pods": list(entry.pods) or None, "replicas": entry.replicas,
                "podUids": list(entry.pod_uids) or None}
    item.update({key: value for key, value in optional.items() if value is not None})
    return item


def with_entry(ledger: Sequence[LedgerEntry], new: LedgerEntry) -> list[LedgerEntry]:
    """The ledger with `new` added, or replacing the entry of the same id."""
    return [entry for entry in ledger if entry.id != new.id] + [new]


# --- pods and ReplicaSets -----------------------------------------------------------------


def created_at(meta: Mapping[str, Any]) -> float | None:
    """When an object was created, None when the manifest does not say."""
    text = meta.get("creationTimestamp")
    return parse_time(text) if text else None


@dataclass(frozen=True)
class PodReport:
    health: PodHealth
    restarts: int


def pod_report(pod: Mapping[str, Any], now: float, grace_seconds: float) -> PodReport | None:
    """Health of one pod; None for pods that are going away or have finished.

    A pod younger than `grace_seconds` is not yet held to being ready (it is starting), but
    a crash loop counts at any age.
    """
    if not is_live(pod):
        return None
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    crash = _crash_looping(containers, restarts)
    starting = _young(meta, now, grace_seconds) and not crash and not _ready(status)
    ready = _ready(status) or starting
    return PodReport(PodHealth(str(meta.get("name", "")), ready=ready, crash_looping=crash,
                               starting=starting, uid=str(meta.get("uid", ""))), restarts)


def _crash_looping(containers: Sequence[Mapping[str, Any]], restarts: int) -> bool:
    """A container waiting in CrashLoopBackOff, or restarts enough to count as a crash loop even
    while running (between two crashes)."""
    waiting = {((c.get("state") or {}).get("waiting") or {}).get("reason") for c in containers}
    return "CrashLoopBackOff" in waiting or restarts >= CRASH_RESTARTS


def _young(meta: Mapping[str, Any], now: float, grace_seconds: float) -> bool:
    """Created less than `grace_seconds` ago (not when the manifest does not say when)."""
    created = created_at(meta)
    return created is not None and now - created < grace_seconds


def pod_healths(pods: Sequence[Mapping[str, Any]], now: float,
                grace_seconds: float) -> tuple[PodHealth, ...]:
    """The health of each pod but those going away or finished (they count as not yet
    replaced)."""
    reports = [pod_report(pod, now, grace_seconds) for pod in pods]
    return tuple(report.health for report in reports if report is not None)


def names_of(pods: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(str(pod["metadata"].get("name", "")) for pod in pods)


def _ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def rollout_info(replica_sets: Sequence[Mapping[str, Any]]) -> RolloutInfo | None:
    """The current revision of a Deployment and the one a rollback would return to, from its
    ReplicaSets: the newest earlier revision whose template differs from the current one."""
    revisions = sorted(_revisions(replica_sets), key=lambda item: item[0])
    if not revisions:
        return None
    current, started, current_key = revisions[-1]
    earlier = [(revision, key) for revision, _, key in revisions[:-1] if key != current_key]
    if not earlier:
        return RolloutInfo(current, None, started)
    previous, previous_key = earlier[-1]
    twins = tuple(revision for revision, _, key in revisions
                  if key == previous_key and revision != previous)
    return RolloutInfo(current, previous, started, twins)


def _revisions(replica_sets: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, str]]:
    """(revision, creation time, template key) of each ReplicaSet with a revision number."""
    found = []
    for rs in replica_sets:
        meta = rs.get("metadata", {})
        text = (meta.get("annotations") or {}).get(REVISION)
        if text is not None and text.isdigit():
            found.append((int(text), created_at(meta) or 0.0, _template_key(rs)))
    return found


def _template_key(replica_set: Mapping[str, Any]) -> str:
    """The pod template as a rollback compares it: without the controller's hash label and
    without the restart stamp, which change the revision but not what runs."""
    template = json.loads(json.dumps((replica_set.get("spec") or {}).get("template") or {}))
    metadata = template.get("metadata") or {}
    (metadata.get("labels") or {}).pop("pod-template-hash", None)
    annotations = metadata.pop("annotations", None) or {}
    annotations.pop(RESTARTED_AT, None)
    if annotations:
        metadata["annotations"] = annotations
    return json.dumps(template, sort_keys=True)


def rollback_template(replica_sets: Sequence[Mapping[str, Any]],
                      revision: int) -> dict[str, Any] | None:
    """What `kubectl rollout undo` writes: the revision's pod template without the
    pod-template-hash label (the Deployment controller adds its own)."""
    for rs in replica_sets:
        annotations = rs.get("metadata", {}).get("annotations") or {}
        if annotations.get(REVISION) == str(revision):
            template = json.loads(json.dumps(rs["spec"]["template"]))
            (template.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
            return dict(template)
    return None


# --- the history of health metrics ---------------------------------------------------------


@dataclass
class HealthHistory:
    """Rows of every health metric, oldest first, at most `limit` rows (in memory only)."""

    limit: int
    rows: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return min((len(values) for values in self.rows.values()), default=0)

    def backfill(self, series: Mapping[str, Sequence[float | None]]) -> None:
        """Start from range-query answers on one grid (the sync period's), one row per step.

        A step that repeats the previous one is kept: it is what a sync at that time would have
        read (the scrape's latest sample, held until the next scrape or over a gap), so the
        backfilled rows keep the live rows' cadence, one per sync period of time, and a metric's
        cycle spans the same rows in both. Dropping repeats (as before 2026-12-07) made the rows
        one per scrape where the live ones are one per sync: with a 60-s scrape and a 15-s sync,
        seasonal differencing compared each live row with one 4 times too recent and flagged a
        healthy cycle in 5 to 35 of 480 syncs (0 or 1 now: tests/test_healing_cadence.py); and
        a 75-s scrape gap cut one cycle short by 5 rows (flags on 528 healthy services at
        5,000: benchmarks/results/scale.md).

        Steps where some metric has no value (a gap longer than Prometheus's 5-minute lookback)
        are made up as the live rows make up syncs that read nothing (`fill`): the rows before
        them again, so the rows after the gap keep their place in the cycle. Dropped, a gap
        at or near the backfill's end (Prometheus and the operator back together after an
        outage) shifted every live row against the cycle: 219 of 300 x 18 x 3 healthy syncs
        flagged (seeds 0-17, three such gaps), 16 made up (tests/test_healing_cadence.py).
        Steps before the first complete one, and a gap longer than a quarter of the history,
        are dropped (as the live clock restarts).
        """
        names = list(series)
        columns = [list(series[name]) for name in names]
        if len({len(column) for column in columns}) > 1:
            self.rows = {name: [] for name in names}
            return
        kept = _rows_a_step(columns, self.limit // 4)
        self.rows = {name: [row[i] for row in kept] for i, name in enumerate(names)}
        self._trim()

    def append(self, row: Mapping[str, float]) -> bool:
        """Add a row; one with a value that is not a finite number is left out whole (False)."""
        if not all(math.isfinite(value) for value in row.values()):
            return False
        if set(row) != set(self.rows):
            self.rows = {name: [] for name in row}  # the metrics changed: start again
        for name, value in row.items():
            self.rows[name].append(value)
        self._trim()
        return True

    def fill(self, count: int, periods: Mapping[str, int]) -> int:
        """`count` rows standing in for sync periods that added none (the metrics unreadable for
        a while, a sync that ran late): each metric's value one period earlier where it is
        differenced with that period (`periods`), else `count` rows earlier (the last `count`
        rows again: their level and their noise, where a held value would be a still line);
        returns how many (none without a row to repeat).
        The rows after a gap then keep their place in the cycle: without them, differencing
        compared each row for a cycle after the gap with the wrong phase
        (tests/test_healing_cadence.py)."""
        added = count if len(self) else 0
        for _ in range(added):
            self.append({name: values[-min(periods.get(name) or count, len(values))]
                         for name, values in self.rows.items()})
        return added

    def tail(self, count: int) -> dict[str, list[float]]:
        return {name: values[-count:] for name, values in self.rows.items()}

    def _trim(self) -> None:
        for values in self.rows.values():
            del values[: -self.limit]


@dataclass
class RowClock:
    """Where the live rows stand against time: the row read at `origin` was the first, and
    row `rows` is due `rows` steps later. One row per sync falls behind it when syncs run late
    (15.8 to 17 s apart for a 15-s period at 5,000 services: a row behind every 5 to 15
    syncs), and a cycle then spans fewer rows live than in the backfill, which is on the
    grid: a 450-s cycle was 30 rows in the backfill and about 28 live, so differencing by 30
    compared a sawtooth's drop with the wrong phase (433 of 666 healthy services flagged it at
    5,000; in a simulation, 17 and 37 flags in 1,800 syncs 15.8 and 16.5 s apart, 0 with the
    rows made up)."""

    origin: float | None = None
    step: float = 0.0
    rows: int = 0

    def missed(self, now: float, step: float) -> int:
        """The rows due before the one read at `now` that no sync added (none on a clock
        that starts here: a first row, or a new sync period)."""
        if self.origin is None or step != self.step or step <= 0:
            self.step = step
            self.restart(now)
            return 0
        return max(0, round((now - self.origin) / step) - self.rows)

    def restart(self, now: float) -> None:
        self.origin, self.rows = now, 0


def _rows_a_step(columns: Sequence[Sequence[float | None]],
                 longest_gap: int) -> list[tuple[float, ...]]:
    """A row for each step (across the columns) with a finite value in every column, and rows
    made up for the steps between (`_made_up`)."""
    rows: list[tuple[float, ...]] = []
    missing = 0
    for step in zip(*columns, strict=True):
        row = _finite_row(step)
        if row is None:
            missing += 1
            continue
        rows.extend(_made_up(rows, missing, longest_gap))
        missing = 0
        rows.append(row)
    rows.extend(_made_up(rows, missing, longest_gap))
    return rows


def _made_up(rows: Sequence[tuple[float, ...]], count: int,
             longest_gap: int) -> list[tuple[float, ...]]:
    """`count` rows standing in for steps with no value: the last `count` rows again (the
    rows there are, over and over, when fewer); none before any row or past `longest_gap`."""
    if not rows or count > longest_gap:
        return []
    kept = len(rows)
    return [rows[kept - count + i] if kept >= count else rows[i % kept] for i in range(count)]


def _finite_row(step: Sequence[float | None]) -> tuple[float, ...] | None:
    """The step's values, None when one of them is missing or not a finite number."""
    if any(value is None or not math.isfinite(value) for value in step):
        return None
    return tuple(float(value) for value in step if value is not None)


# --- the incident ------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """An anomaly since `started_at`: the deviating metrics with their baseline and scale
    frozen at the flag."""

    started_at: float
    baselines: tuple[tuple[str, float, float], ...]


def track_incident(incident: Incident | None, verdict: AnomalyVerdict, now: float,
                   min_z: float) -> tuple[Incident | None, AnomalyVerdict]:
    """Open an incident at a flag, keep it (and the verdict anomalous) while a metric that
    deviated still deviates by `min_z` of its frozen scale, close it when all are back."""
    if verdict.is_anomaly and incident is None:
        return _open(verdict, now, min_z), verdict
    if incident is None:
        return None, verdict
    latest = {c.metric: c.value for c in verdict.contributions}
    still = any(abs(latest.get(metric, baseline) - baseline) / scale >= min_z
                for metric, baseline, scale in incident.baselines)
    if still or verdict.is_anomaly:
        return incident, replace(verdict, is_anomaly=True)
    return None, verdict


def _open(verdict: AnomalyVerdict, now: float, min_z: float) -> Incident:
    moved = [c for c in verdict.contributions if abs(c.z) >= min_z] or list(
        verdict.contributions[:1])
    baselines = tuple((c.metric, c.baseline, abs(c.value - c.baseline) / abs(c.z))
                      for c in moved if c.z != 0)
    return Incident(now, baselines)


# --- the load signal (saturation) ------------------------------------------------------------

# Saturation compares the last few rows with the rows just before them: this many rows of
# baseline (a minute at a 2 s sync, 7.5 at the default 15 s).
LOAD_BASELINE_ROWS = 30


def relative_change(values: Sequence[float], recent_rows: int,
                    baseline_rows: int = LOAD_BASELINE_ROWS) -> float | None:
    """(mean of the last `recent_rows`) / (median of the `baseline_rows` before) - 1, over the
    finite values only; None without enough of them. From a zero baseline, any rise counts
    as +100 %."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if recent_rows < 1 or len(finite) < recent_rows + max(3, baseline_rows // 3):
        return None
    recent = sum(finite[-recent_rows:]) / recent_rows
    baseline = statistics.median(finite[-recent_rows - baseline_rows:-recent_rows])
    if baseline <= 0:
        return 1.0 if recent > 0 else 0.0
    change = recent / baseline - 1.0
    return change if math.isfinite(change) else None


def _largest_change(columns: Mapping[str, Sequence[float]], roles: Mapping[str, str],
                    role: str, recent_rows: int) -> float:
    changes = [relative_change(values, recent_rows) for name, values in columns.items()
               if roles.get(name) == role]
    return max((c for c in changes if c is not None), default=0.0)


def load_signals(load: Mapping[str, Sequence[float]], health: Mapping[str, Sequence[float]],
                 recent_rows: int, roles: Mapping[str, str]) -> LoadSignals | None:
    """Saturation inputs: the largest relative change of the scaling metrics (the load), and
    of the health metrics whose role (`roles`, by metric name) is `latency` and `cpu`. None
    when the load has too little history to compare."""
    changes = [relative_change(values, recent_rows) for values in load.values()]
    known = [c for c in changes if c is not None]
    if not known:
        return None
    return LoadSignals(max(known), _largest_change(health, roles, "latency", recent_rows),
                       _largest_change(health, roles, "cpu", recent_rows))
