"""One scaling sync's plan, from plain data: what is written, posted and reported.

`domain.scaling.sync.plan` is the scaling daemon's whole decision; the daemon only observes the
`Snapshot` and carries the `Plan` out. No cluster, no Prometheus, nothing patched.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.coupling import CouplingStatus
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.scaling import sync
from adaptive_operator.domain.scaling import writes as scale_writes
from adaptive_operator.domain.scaling.algorithm import MetricReading, ScalingHistory
from adaptive_operator.domain.scaling.coupled_status import Coupled
from adaptive_operator.domain.scaling.plan import merged
from adaptive_operator.domain.scaling.status import Problem

NOW = 1_800_000_000.0
GENERATION = 3


def spec(mode: str = "Active", **extra: Any) -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "mode": mode, "minReplicas": 1, "maxReplicas": 10,
        "syncPeriodSeconds": 2,
        "metrics": [{"name": "rps", "query": "sum(rate(x[1m]))", "targetPerReplica": 10}],
        **extra})


def seen(load: float | None = 40.0, current: int = 2, status: dict[str, Any] | None = None,
         **changes: Any) -> sync.Snapshot:
    """The target at `current` replicas, all ready, with `load` requests per second."""
    reading = MetricReading("rps", load, 10.0, None if load is not None else "no data")
    found = sync.Snapshot(status or {}, GENERATION, True, current=current, ready=current,
                          readings=(reading,))
    return replace(found, **changes)


def conditions(patch: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    assert patch is not None
    return {c["type"]: (c["status"], c["reason"]) for c in patch["conditions"]}


def check_write_up_from_2_to_4(write: sync.ScaleWrite) -> None:
    """Its pending record (written first), the record once made, and its Event."""
    assert (write.previous, write.replicas, write.direction) == (2, 4, "up")
    assert write.pending.pending == scale_writes.PendingWrite(4, 2, NOW)
    assert write.made == scale_writes.WriteRecord(applied=4)
    assert write.event.reason == "Scaled"
    assert write.event.message.startswith("Deployment web 2 -> 4")


def check_scaled_status(patch: dict[str, Any]) -> None:
    assert (patch["currentReplicas"], patch["desiredReplicas"]) == (2, 4)
    assert patch["lastScaleTime"] == "2027-01-15T08:00:00Z"
    assert patch["scaleWrites"]["appliedReplicas"] == 4 and patch["scaleWrites"]["pending"] is None
    assert patch["observedGeneration"] == GENERATION and "history" in patch
    assert conditions(patch)["Ready"] == ("True", "Scaling")


def test_a_load_above_target_scales_up_recording_the_write_before_it_is_made() -> None:
    planned = sync.plan(spec(), seen(40.0), sync.Memory(), NOW)
    write = planned.scale
    assert write is not None
    check_write_up_from_2_to_4(write)
    patch = planned.status.patch
    assert patch is not None
    check_scaled_status(patch)
    assert planned.ok and planned.problem is None and planned.events == ()
    assert planned.status.memory.record == write.made
    assert planned.status.memory.written == planned.memory.history


def test_a_write_the_target_refuses_leaves_no_pending_record_and_no_scale_time() -> None:
    write = sync.plan(spec(), seen(40.0), sync.Memory(), NOW).scale
    assert write is not None
    refused = write.refused
    assert refused.patch is not None and "lastScaleTime" not in refused.patch
    assert refused.patch["scaleWrites"]["pending"] is None
    assert refused.memory.record is not None and refused.memory.record.pending is None
    assert refused.memory.record.applied == 2  # what the target showed, not the refused 4


def test_dry_run_recommends_and_writes_nothing() -> None:
    planned = sync.plan(spec("DryRun"), seen(40.0), sync.Memory(), NOW)
    assert planned.scale is None
    assert [(e.reason, e.message[:15]) for e in planned.events] == [
        ("DryRunRecommendation", "would scale 2 -")]
    assert planned.memory.record == scale_writes.WriteRecord()
    assert conditions(planned.status.patch)["ScalingActive"] == ("True", "DryRun")


def test_paused_holds_and_says_so() -> None:
    planned = sync.plan(spec("Paused"), seen(40.0), sync.Memory(), NOW)
    assert planned.scale is None and planned.events == ()
    assert conditions(planned.status.patch)["ScalingActive"] == ("False", "Paused")


def test_a_replica_that_does_not_lead_writes_nothing() -> None:
    planned = sync.plan(spec(), seen(40.0, leading=False), sync.Memory(), NOW)
    assert planned.scale is None and planned.outcome.decision is not None
    assert planned.outcome.decision.desired_replicas == 4


def test_a_blocked_target_is_reported_and_the_memory_kept() -> None:
    memory = sync.Memory(scale_writes.WriteRecord(applied=3), ScalingHistory((), ()))
    blocker = Problem("ConflictingAutoscaler", "HorizontalPodAutoscaler web already scales it")
    shown = {"forecast": {"summary": "Reactive"}}
    planned = sync.plan(spec(), sync.Snapshot(shown, GENERATION, True, blocker=blocker),
                        memory, NOW)
    assert planned.outcome.decision is None and planned.scale is None
    assert planned.problem == blocker and not planned.ok
    assert planned.memory == memory
    patch = planned.status.patch
    assert conditions(patch)["ScalingActive"] == ("False", "ConflictingAutoscaler")
    assert conditions(patch)["MetricsAvailable"] == ("Unknown", "NotQueried")
    assert patch is not None and "currentReplicas" not in patch and "history" not in patch
    assert patch["scaleWrites"]["appliedReplicas"] == 3
    assert patch["forecast"] is None  # a merge patch's None removes what was shown


def test_unreadable_metrics_hold_the_replicas_and_fail_the_sync() -> None:
    problem = Problem("QueryFailed", "metric rps: no data")
    planned = sync.plan(spec(), seen(None, metric_problem=problem), sync.Memory(), NOW)
    assert planned.scale is None and planned.problem == problem and not planned.ok
    assert conditions(planned.status.patch)["ScalingActive"] == ("False", "FailedGetMetrics")
    assert conditions(planned.status.patch)["MetricsAvailable"] == ("False", "QueryFailed")


def test_a_write_made_before_a_restart_is_announced_and_counts_in_the_rate_limits() -> None:
    pending = {"appliedReplicas": 2, "pending": {"replicas": 4, "previous": 2,
                                                 "time": "2027-01-15T07:59:50Z"}}
    planned = sync.plan(spec(), seen(40.0, current=4, status={"scaleWrites": pending}),
                        sync.Memory(), NOW)
    assert [e.reason for e in planned.events] == ["Scaled"]
    assert "made before the operator restarted" in planned.events[0].message
    assert planned.memory.record == scale_writes.WriteRecord(applied=4)
    assert planned.memory.history is not None
    assert [e.change for e in planned.memory.history.scale_events] == [2]


@pytest.mark.parametrize("now", [NOW, NOW + 0.1234567, NOW + 0.5, 1_796_000_214.953234])
def test_a_write_and_its_announcement_after_a_restart_are_one_fact(now: float) -> None:
    """The leader that made a write may be gone before it recorded it (killed, or frozen while
    another took over): whoever finds it made says it under the same Event key, so the API server
    keeps the first telling and refuses the second. Times go through status as text."""
    made = sync.plan(spec(), seen(40.0), sync.Memory(), now)
    assert made.scale is not None
    status = {"scaleWrites": sync.writes_status(made.scale.pending)}
    found = sync.plan(spec(), seen(40.0, current=4, status=status), sync.Memory(), now + 15)
    (announced,) = found.events
    assert made.scale.event.key is not None and announced.key == made.scale.event.key
    later = sync.plan(spec(), seen(40.0), sync.Memory(), now + 15)
    assert later.scale is not None and later.scale.event.key != made.scale.event.key


def test_another_writer_fighting_the_operator_is_left_alone() -> None:
    fought = scale_writes.WriteRecord(applied=4, overrides=(NOW - 10,))
    planned = sync.plan(spec(), seen(40.0, current=2), sync.Memory(record=fought), NOW)
    assert planned.scale is None
    assert planned.problem is not None and planned.problem.reason == "ConflictingWriter"
    assert conditions(planned.status.patch)["ScalingActive"] == ("False", "ConflictingWriter")


def test_damaged_records_in_status_start_again() -> None:
    damaged = {"scaleWrites": {"appliedReplicas": "many"}, "history": {"recommendations": 7}}
    planned = sync.plan(spec(), seen(40.0, status=damaged), sync.Memory(), NOW)
    assert planned.scale is not None and planned.scale.replicas == 4


def test_healing_and_coupled_floors_raise_the_replicas_and_are_named() -> None:
    healed = sync.plan(spec(), seen(10.0, healing_floor=5), sync.Memory(), NOW)
    assert healed.scale is not None and healed.scale.replicas == 5
    assert sync.HEALING_FLOOR in healed.scale.event.message
    coupled = Coupled(6, "the coupled forecast from frontend",
                      CouplingStatus(trusted=True, reason="better", summary="frontend: Trusted"),
                      Condition("CouplingTrusted", "True", "CoupledBetterThanOwnForecast", "ok"))
    raised = sync.plan(spec(), seen(10.0, healing_floor=5, coupled=coupled), sync.Memory(), NOW)
    assert raised.scale is not None and raised.scale.replicas == 6
    assert "the coupled forecast from frontend" in raised.scale.event.message
    assert raised.coupling_event is not None
    assert raised.coupling_event.reason == "CoupledBetterThanOwnForecast"
    patch = raised.status.patch
    assert patch is not None and patch["coupling"]["trusted"] is True
    assert conditions(patch)["CouplingTrusted"] == ("True", "CoupledBetterThanOwnForecast")


def test_status_is_written_only_when_it_changes() -> None:
    first = sync.plan(spec(), seen(20.0), sync.Memory(), NOW)
    assert first.scale is None and first.status.patch is not None
    shown = first.status.patch
    again = sync.plan(spec(), seen(20.0, status=shown), first.status.memory, NOW + 2)
    assert again.status.patch is None
    assert again.status.memory.written == first.status.memory.written


def test_healing_conditions_and_shown_sections_are_carried_or_cleared() -> None:
    limited = Condition("HealingLimited", "False", "AllRemediesAvailable", "all")
    shown = {"coupling": {"trusted": True}, "conditions": [
        {"type": "CouplingTrusted", "status": "True", "reason": "x", "message": "y",
         "lastTransitionTime": "2027-01-15T07:00:00Z"},
        {"type": "ForecastReliable", "status": "True", "reason": "x", "message": "y",
         "lastTransitionTime": "2027-01-15T07:00:00Z"}]}
    planned = sync.plan(spec(), seen(20.0, status=shown, healing_conditions=(limited,)),
                        sync.Memory(), NOW)
    patch = planned.status.patch
    found = conditions(patch)
    assert found["HealingLimited"] == ("False", "AllRemediesAvailable")
    assert found["CouplingTrusted"] == ("False", "NotCoupled")
    assert found["ForecastReliable"] == ("False", "PredictiveDisabled")
    assert patch is not None and patch["coupling"] is None


def test_a_spec_the_model_refuses_is_reported_once() -> None:
    patch = sync.invalid_spec({}, GENERATION, "maxReplicas\n  too small", NOW)
    assert patch is not None and patch["observedGeneration"] == GENERATION
    assert [(c["reason"], c["message"]) for c in patch["conditions"]] == [
        ("InvalidSpec", "maxReplicas   too small")]
    assert sync.invalid_spec(patch, GENERATION, "maxReplicas\n  too small", NOW + 2) is None


def test_a_restart_holds_the_current_count_for_the_window_whatever_the_stored_times() -> None:
    # 6 was last written 200 s ago (repeating it since wrote nothing): a restarted operator
    # keeps 6 for a full window from its start, as upstream's controller does on every start.
    written = datetime.fromtimestamp(NOW - 200, UTC).isoformat().replace("+00:00", "Z")
    status = {"history": {"recommendations": [{"time": written, "replicas": 6}]}}
    first = sync.plan(spec(), seen(15.0, current=6, status=status), sync.Memory(), NOW)
    assert first.scale is None
    later = sync.plan(spec(), seen(15.0, current=6, status=status), first.memory, NOW + 150)
    assert later.scale is None  # the stored 6 alone would have left the window at NOW + 100
    after = sync.plan(spec(), seen(15.0, current=6, status=status), later.memory, NOW + 301)
    assert after.scale is not None and after.scale.replicas == 2


def test_a_restart_still_scales_up_at_once_with_upstreams_scale_up_window_of_zero() -> None:
    written = datetime.fromtimestamp(NOW - 200, UTC).isoformat().replace("+00:00", "Z")
    status = {"history": {"recommendations": [{"time": written, "replicas": 2}]}}
    planned = sync.plan(spec(), seen(40.0, current=2, status=status), sync.Memory(), NOW)
    assert planned.scale is not None and planned.scale.replicas == 4


def test_a_coupling_field_gone_since_the_last_write_is_deleted_not_written_every_sync() -> None:
    condition = Condition("CouplingTrusted", "False", "Untrusted", "no relation yet")
    coupled = Coupled(None, "", CouplingStatus(trusted=False, reason="no relation yet",
                                               summary="frontend: Untrusted"), condition)
    before = {"coupling": {"trusted": True, "reason": "better", "summary": "frontend: Trusted",
                           "intercept": 1.5, "floorReplicas": 4}}  # before a restart
    first = sync.plan(spec(), seen(20.0, status=before, coupled=coupled), sync.Memory(), NOW)
    patch = first.status.patch
    assert patch is not None
    assert patch["coupling"]["intercept"] is None and patch["coupling"]["floorReplicas"] is None
    shown = merged(before, patch)
    assert "intercept" not in shown["coupling"] and "floorReplicas" not in shown["coupling"]
    again = sync.plan(spec(), seen(20.0, status=shown, coupled=coupled), first.status.memory,
                      NOW + 2)
    assert again.status.patch is None
