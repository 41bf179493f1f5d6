"""The scaling sync's plan: what is written, posted and reported, from the outcome alone."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.scaling.algorithm import (
    MetricReading,
    ScaleEvent,
    ScalingDecision,
    ScalingHistory,
)
from adaptive_operator.domain.scaling.plan import (
    Actions,
    history_to_write,
    kept_history,
    plan_actions,
    status_changed,
    status_update,
)
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome
from adaptive_operator.domain.scaling.writes import (
    PendingWrite,
    WriteCheck,
    WriteRecord,
    said_key,
)

NOW = 1_000.0
TARGET = "Deployment web"
BEFORE = ScalingHistory((), (ScaleEvent(900.0, 2),))


def decision(desired: int, reason: str = "ScaleUp") -> ScalingDecision:
    decided = ScalingHistory((), (*BEFORE.scale_events, ScaleEvent(NOW, desired - 3)))
    return ScalingDecision(desired, reason, f"to {desired}", (("rps", desired),), False, True,
                           decided)


def outcome(desired: int | None, mode: str = "Active", **fields: object) -> SyncOutcome:
    made = decision(desired) if desired is not None else None
    readings = (MetricReading("rps", 50.0, 10.0),)
    return SyncOutcome(mode, made, readings=readings, **fields)  # type: ignore[arg-type]


CONFLICT = Problem("ConflictingWriter", "kubectl scale twice")
MISSING = Problem("TargetNotFound", "no Deployment web")
DONE_WRITE = PendingWrite(5, 3, 990.0)
DONE = WriteCheck(WriteRecord(), completed=DONE_WRITE)


@pytest.mark.parametrize(
    ("case", "current", "leading", "expected"),
    [
        pytest.param(outcome(5), 3, True, Actions(5), id="active-scales-to-the-decision"),
        pytest.param(outcome(3), 3, True, Actions(), id="active-at-the-decision-writes-nothing"),
        pytest.param(outcome(5), 3, False, Actions(), id="a-replica-not-leading-writes-nothing"),
        pytest.param(outcome(5, conflict=CONFLICT), 3, True, Actions(problem=CONFLICT),
                     id="a-fight-with-another-writer-stands-aside"),
        pytest.param(outcome(5, "DryRun"), 3, True, Actions(events=(
            Event("Normal", "DryRunRecommendation", "would scale 3 -> 5: to 5"),)),
            id="dry-run-recommends"),
        pytest.param(outcome(3, "DryRun"), 3, True, Actions(), id="dry-run-at-the-decision"),
        pytest.param(outcome(5, "Paused"), 3, True, Actions(), id="paused-does-nothing"),
        pytest.param(outcome(None, blocker=MISSING), None, True, Actions(problem=MISSING),
                     id="a-missing-target-is-reported"),
        pytest.param(outcome(5), None, True, Actions(), id="no-scale-read-no-write"),
        pytest.param(outcome(3, writes=DONE), 3, True, Actions(events=(Event(
            "Normal", "Scaled", f"{TARGET} 3 -> 5: made before the operator restarted, found "
            "applied and recorded now", said_key(DONE_WRITE)),)),
            id="a-write-found-made-is-announced"),
    ],
)
def test_plan_actions(case: SyncOutcome, current: int | None, leading: bool,
                      expected: Actions) -> None:
    assert plan_actions(case.mode, TARGET, case, current, leading) == expected


def test_status_update_shows_a_new_decision_and_keeps_a_shown_one() -> None:
    new = status_update({}, 4, outcome(5), 3, {"applied": 3}, 990.0, NOW)
    assert new == {
        "observedGeneration": 4, "scaleWrites": {"applied": 3}, "currentReplicas": 3,
        "desiredReplicas": 5, "lastScaleTime": timestamp(990.0),
        "lastDecision": {"time": timestamp(NOW), "replicas": 5, "reason": "ScaleUp",
                         "message": "to 5", "metrics": [
                             {"name": "rps", "value": 50.0, "targetPerReplica": 10.0,
                              "proposedReplicas": 5}]},
    }
    again = status_update(new, 4, outcome(5), 3, None, None, NOW + 15)
    assert "lastDecision" not in again
    assert not status_changed(new, again)
    assert status_update({}, 1, outcome(None), None, None, None, NOW) == {"observedGeneration": 1}


def test_a_merge_patch_none_is_not_a_change() -> None:
    assert not status_changed({"scaleWrites": {"applied": 3}},
                              {"scaleWrites": {"applied": 3, "pending": None}})
    assert status_changed({"currentReplicas": 3}, {"currentReplicas": 4})


def test_only_an_active_service_keeps_the_scale_event_it_decided() -> None:
    made = decision(5)
    assert kept_history("Active", BEFORE, made) == made.history
    assert kept_history("DryRun", BEFORE, made).scale_events == BEFORE.scale_events


def test_the_history_is_written_with_status_or_when_it_changed() -> None:
    made = decision(5).history
    assert history_to_write(made, outcome(5), None, False) == made  # never written
    assert history_to_write(made, outcome(5), made, True) == made
    assert history_to_write(made, outcome(5), made, False) is None
    assert history_to_write(made, outcome(None), None, True) is None
    assert history_to_write(None, outcome(5), None, True) is None
