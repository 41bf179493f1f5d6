"""Who wrote the target's replicas: the operator's own writes, and other clients'.

The operator records each replica write before making it (`pending`) and what it set once made
(`applied`). At the next sync the target tells which happened:
- it shows the pending count: the write went through (the operator may have been killed before
  its Event and status): it is completed, recorded, never made again;
- it shows another count than the operator set: another client (a person's `kubectl scale`, a
  GitOps tool, a second autoscaler) overrode it. The operator puts its own count back once, as
  HorizontalPodAutoscaler would; a second override within the window means a fight, and the
  operator stands aside (ScalingActive=False, ConflictingWriter) until the other writer has been
  quiet for a whole window. Overrides are remembered for two windows, so the write that resumes
  after a quiet window, if overridden again, is the only one: in a persistent fight the operator
  writes the target at most once per window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from adaptive_operator.api import adaptive_service as api
from adaptive_operator.api.base import MAX_OVERRIDES

OVERRIDES_FOR_CONFLICT = 2  # the second override within the window is a fight
WINDOW_PERIODS = 15  # the window, in sync periods (30 s at a 2 s sync, 225 s at 15 s)
MEMORY_WINDOWS = 2  # how long overrides count towards a fight, in windows


@dataclass(frozen=True)
class PendingWrite:
    replicas: int
    previous: int
    at: float


@dataclass(frozen=True)
class WriteRecord:
    applied: int | None = None  # the count the operator last set or accepted
    pending: PendingWrite | None = None  # recorded before the write; cleared once seen through
    overrides: tuple[float, ...] = ()  # when other clients' changes were seen


@dataclass(frozen=True)
class WriteCheck:
    record: WriteRecord
    completed: PendingWrite | None = None  # a write found made but never recorded as made
    conflict: str | None = None  # why the operator stands aside, when it does


def window_seconds(sync_period: float) -> float:
    return WINDOW_PERIODS * sync_period


def check_writes(record: WriteRecord, current: int, now: float, window: float) -> WriteCheck:
    """What the target's current count says about the last writes; the record brought up to date.
    Pure: the caller persists the record."""
    overrides = tuple(t for t in record.overrides if now - t < MEMORY_WINDOWS * window)
    pending = record.pending
    if pending is not None and current == pending.replicas:
        return _conflict(WriteRecord(current, None, overrides), now, window, completed=pending)
    if pending is None and record.applied is not None and current != record.applied:
        overrides += (now,)
    # A pending write not seen through was not made (or was undone at once): abandoned, and
    # not held against the other client.
    return _conflict(WriteRecord(current, None, overrides), now, window)


def _conflict(
    record: WriteRecord, now: float, window: float, completed: PendingWrite | None = None
) -> WriteCheck:
    overrides = record.overrides
    if len(overrides) < OVERRIDES_FOR_CONFLICT or now - overrides[-1] >= window:
        return WriteCheck(record, completed)
    quiet_in = window - (now - overrides[-1])
    message = (
        f"another client changed the replicas {len(overrides)} times in the last "
        f"{MEMORY_WINDOWS * window:.0f}s, last to {record.applied}; the operator stands "
        f"aside so as not to fight it, until it has been quiet for {window:.0f}s (about "
        f"{quiet_in:.0f}s from now)"
    )
    return WriteCheck(record, completed, message)


def with_pending(record: WriteRecord, replicas: int, previous: int, now: float) -> WriteRecord:
    return replace(record, pending=PendingWrite(replicas, previous, now))


def said_key(pending: PendingWrite) -> str:
    """Names the Event that tells of this write: the same before and after the record's trip
    through status (times kept to the microsecond), so it is said once whoever says it."""
    return f"scaled:{pending.previous}:{pending.replicas}:{_moment(pending.at).isoformat()}"


def made(record: WriteRecord, replicas: int) -> WriteRecord:
    return replace(record, applied=replicas, pending=None)


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def record_to_status(record: WriteRecord) -> api.ScaleWrites:
    pending = record.pending
    return api.ScaleWrites(
        applied_replicas=record.applied,
        pending=api.PendingScale(
            replicas=pending.replicas, previous=pending.previous, time=_moment(pending.at)
        )
        if pending
        else None,
        overridden_at=[_moment(t) for t in sorted(record.overrides)[-MAX_OVERRIDES:]],
    )


def record_from_status(status: api.ScaleWrites | None) -> WriteRecord:
    if status is None:
        return WriteRecord()
    pending = status.pending
    return WriteRecord(
        applied=status.applied_replicas,
        pending=PendingWrite(pending.replicas, pending.previous, _seconds(pending.time))
        if pending
        else None,
        overrides=tuple(_seconds(t) for t in status.overridden_at),
    )
