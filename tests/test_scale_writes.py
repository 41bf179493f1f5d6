"""The record of replica writes: own writes completed once after a crash, other writers not
fought (a bounded number of writes per window), and the record's round trip through status."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.scaling import writes as sw
from adaptive_operator.domain.scaling.algorithm import ScalingDecision, ScalingHistory
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome, sync_conditions

WINDOW = 30.0


@pytest.mark.parametrize(("record", "current", "applied", "overrides", "completed"), [
    pytest.param(sw.WriteRecord(), 3, 3, 0, None, id="first-sight-accepts-the-count"),
    pytest.param(sw.WriteRecord(3), 3, 3, 0, None, id="unchanged-is-no-override"),
    pytest.param(sw.WriteRecord(3), 7, 7, 1, None, id="another-writer-is-one-override"),
    pytest.param(sw.WriteRecord(1, sw.PendingWrite(3, 1, 90.0)), 3, 3, 0,
                 sw.PendingWrite(3, 1, 90.0), id="pending-found-applied-is-completed"),
    pytest.param(sw.WriteRecord(1, sw.PendingWrite(3, 1, 90.0)), 1, 1, 0, None,
                 id="pending-not-applied-is-abandoned-not-an-override"),
    pytest.param(sw.WriteRecord(3, None, (30.0,)), 3, 3, 0, None,
                 id="overrides-older-than-the-window-are-forgotten"),
])
def test_check_writes(record: sw.WriteRecord, current: int, applied: int, overrides: int,
                      completed: sw.PendingWrite | None) -> None:
    check = sw.check_writes(record, current, 100.0, WINDOW)
    assert check.record.applied == applied and check.record.pending is None
    assert len(check.record.overrides) == overrides
    assert check.completed == completed
    assert check.conflict is None


def test_second_override_in_the_window_makes_the_operator_stand_aside() -> None:
    check = sw.check_writes(sw.WriteRecord(3, None, (80.0,)), 7, 100.0, WINDOW)
    assert check.conflict is not None
    assert "2 times in the last 60s, last to 7" in check.conflict
    assert "about 30s from now" in check.conflict
    # Standing aside: the other writer's count is accepted; unchanged, it is no new override.
    later = sw.check_writes(check.record, 7, 120.0, WINDOW)
    assert later.conflict is not None and len(later.record.overrides) == 2
    quiet = sw.check_writes(later.record, 7, 131.0, WINDOW)
    assert quiet.conflict is None  # quiet for a window: the operator resumes, once
    again = sw.check_writes(sw.made(quiet.record, 3), 7, 133.0, WINDOW)
    assert again.conflict is not None, "overridden again at once: it stands aside at once"
    forgotten = sw.check_writes(sw.WriteRecord(3, None, (50.0, 60.0)), 7, 140.0, WINDOW)
    assert forgotten.conflict is None and forgotten.record.overrides == (140.0,)


def test_a_fight_costs_at_most_one_write_per_window() -> None:
    """The other writer sets 7 every second; the operator wants 3 and syncs every 2 s."""
    record, writes, current = sw.WriteRecord(3), 0, 3
    for now in range(0, 300, 2):
        current = 7  # the other writer got in since the last sync
        check = sw.check_writes(record, current, float(now), WINDOW)
        record = check.record
        if check.conflict is None:
            record = sw.made(sw.with_pending(record, 3, current, float(now)), 3)
            writes += 1
    assert writes <= 300 / WINDOW + 1


def test_the_record_round_trips_through_status() -> None:
    record = sw.WriteRecord(3, sw.PendingWrite(5, 3, 1_700_000_000.5), (1_700_000_001.25,))
    assert sw.record_from_status(sw.record_to_status(record)) == record
    assert sw.record_from_status(None) == sw.WriteRecord()
    assert sw.window_seconds(2) == WINDOW


def test_conflict_is_reported_in_scaling_active() -> None:
    decision = ScalingDecision(3, "ScaleUp", "", (), False, True, ScalingHistory())
    outcome = SyncOutcome("Active", decision,
                          conflict=Problem("ConflictingWriter", "another client ..."))
    conditions = {c.type: c for c in sync_conditions(outcome)}
    assert (conditions["ScalingActive"].status, conditions["ScalingActive"].reason) == (
        "False", "ConflictingWriter")
    assert conditions["Ready"].reason == "ConflictingWriter"
