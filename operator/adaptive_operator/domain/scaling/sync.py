"""One AdaptiveService scaling sync as a pure function: `plan(spec, snapshot, memory, now)`.

The handler observes a `Snapshot` (the target, its pods, the readings, the forecast, the coupled
forecast, what healing asks), this module decides and says what to do: the replicas to write
(with the write-ahead record), the Events, the problem to report and the status patch. The
handler carries out exactly that and keeps the returned `Memory` for the next sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from adaptive_operator.api.adaptive_service import (
    AdaptiveServiceSpec,
    ScaleWrites,
    StabilizationHistory,
)
from adaptive_operator.domain.common.conditions import Condition, merge_conditions
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.scaling import algorithm as scaling
from adaptive_operator.domain.scaling import writes as scale_writes
from adaptive_operator.domain.scaling.config import (
    history_to_status,
    restored_history,
    spec_from_model,
)
from adaptive_operator.domain.scaling.coupled_status import Coupled, raised, verdict_event
from adaptive_operator.domain.scaling.coupled_status import conditions as coupling_conditions
from adaptive_operator.domain.scaling.coupled_status import not_evaluated as coupling_not_evaluated
from adaptive_operator.domain.scaling.coupled_status import status_fields as coupling_fields
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.forecast_status import (
    forecast_conditions,
    forecast_fields,
    not_evaluated_condition,
    slow_numbers_moved,
    without_slow_numbers,
)
from adaptive_operator.domain.scaling.plan import (
    history_to_write,
    kept_history,
    merged,
    plan_actions,
    status_changed,
    status_update,
)
from adaptive_operator.domain.scaling.records import ScaleEvent
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome, sync_conditions

HEALING_FLOOR = "a healing scale-out (saturation)"


@dataclass(frozen=True)
class Snapshot:
    """What one sync observed. With a `blocker` nothing else about the target was read."""

    status: Mapping[str, Any]  # the object's status as watched
    generation: int | None
    leading: bool  # may this process act now
    blocker: Problem | None = None  # another autoscaler owns the target, or it is missing
    current: int | None = None  # the target's replicas
    ready: int = 0
    unready: int = 0
    readings: tuple[scaling.MetricReading, ...] = ()
    metric_problem: Problem | None = None
    forecast: ServiceForecast | None = None
    coupled: Coupled | None = None
    healing_floor: int | None = None
    healing_conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Memory:
    """What a sync hands to the next, fresher than the watched status: the record of replica
    writes, the stabilization history decided, and the one last written to status."""

    record: scale_writes.WriteRecord | None = None
    history: scaling.ScalingHistory | None = None
    written: scaling.ScalingHistory | None = None


@dataclass(frozen=True)
class StatusWrite:
    patch: dict[str, Any] | None  # None: status already says all of it
    memory: Memory  # the memory once the patch is written


@dataclass(frozen=True)
class ScaleWrite:
    """A replica write: recorded in status (`pending`) before it is made, so a crash in between
    leaves a record the next sync finds applied or not, and the write is never made twice."""

    replicas: int
    previous: int
    pending: scale_writes.WriteRecord
    made: scale_writes.WriteRecord
    event: Event  # posted once the write is made
    refused: StatusWrite  # the status when the target refuses the write

    @property
    def direction(self) -> str:
        return "up" if self.replicas > self.previous else "down"


@dataclass(frozen=True)
class Plan:
    outcome: SyncOutcome
    memory: Memory  # after deciding, before anything is written
    events: tuple[Event, ...]  # posted first
    problem: Problem | None  # counted and logged
    scale: ScaleWrite | None
    status: StatusWrite  # when the write (if any) is made
    coupling_event: Event | None  # the coupling's verdict changed

    @property
    def ok(self) -> bool:
        return self.outcome.blocker is None and self.outcome.metric_problem is None


def plan(spec: AdaptiveServiceSpec, snapshot: Snapshot, memory: Memory, now: float) -> Plan:
    """Decide, then say what to write, post and report."""
    ref = spec.scale_target_ref
    outcome, kept = decided(spec, snapshot, memory, now)
    actions = plan_actions(spec.mode, f"{ref.kind} {ref.name}", outcome, snapshot.current,
                           snapshot.leading)
    event = verdict_event(snapshot.status, snapshot.coupled)
    if actions.scale_to is None:
        status = status_write(spec, snapshot, outcome, kept, None, now)
        return Plan(outcome, kept, actions.events, actions.problem, None, status, event)
    # There is a decision and a current count.
    write = scale_write(spec, snapshot, outcome, kept, actions.scale_to, now)
    status = status_write(spec, recorded(snapshot, write.pending), outcome,
                          replace(kept, record=write.made), now, now)
    return Plan(outcome, kept, actions.events, actions.problem, write, status, event)


def decided(spec: AdaptiveServiceSpec, snapshot: Snapshot, memory: Memory,
            now: float) -> tuple[SyncOutcome, Memory]:
    """The sync's outcome, and the memory after it (unchanged when blocked)."""
    if snapshot.blocker is not None or snapshot.current is None:
        return SyncOutcome(spec.mode, None, blocker=snapshot.blocker), memory
    domain_spec = spec_from_model(spec)
    history = memory.history or restored_history(
        stored_history(snapshot.status.get("history")), snapshot.current, now,
        domain_spec.scale_down.stabilization_window_seconds)
    check = check_own_writes(spec, snapshot.status, snapshot.current, memory.record, now)
    if check.completed is not None:  # made before a crash: it counts in the rate limits
        done = check.completed
        event = ScaleEvent(done.at, done.replicas - done.previous)
        history = scaling.ScalingHistory(history.recommendations, (*history.scale_events, event))
    floor, source = raised(*floor_for(snapshot.forecast, snapshot.healing_floor),
                           snapshot.coupled)
    ceiling = snapshot.forecast.ceiling if snapshot.forecast else None
    observed = scaling.ScalingSnapshot(snapshot.current, snapshot.ready, snapshot.unready,
                                       snapshot.readings)
    decision = scaling.decide(domain_spec, observed, history, now, floor, ceiling,
                              floor_source=source)
    conflict = Problem("ConflictingWriter", check.conflict) if check.conflict else None
    outcome = SyncOutcome(spec.mode, decision, metric_problem=snapshot.metric_problem,
                          all_metrics_failed=all(r.value is None for r in snapshot.readings),
                          readings=snapshot.readings, conflict=conflict, writes=check,
                          ready_pods=snapshot.ready)
    return outcome, replace(memory, record=check.record,
                            history=kept_history(spec.mode, history, decision))


def floor_for(forecast: ServiceForecast | None, healed: int | None) -> tuple[int | None, str]:
    """The higher of the forecast's floor and a healing scale-out's, and which one it is."""
    floor = forecast.floor if forecast else None
    if healed is not None and (floor is None or healed > floor):
        return healed, HEALING_FLOOR
    return floor, "the forecast"


def check_own_writes(spec: AdaptiveServiceSpec, status: Mapping[str, Any], current: int,
                     record: scale_writes.WriteRecord | None,
                     now: float) -> scale_writes.WriteCheck:
    """The record of the operator's replica writes (the process's own, else the one in status,
    after a restart or a leader change), checked against the target's current count."""
    if spec.mode != "Active":  # nothing is written: nothing to tell apart
        return scale_writes.WriteCheck(scale_writes.WriteRecord())
    window = scale_writes.window_seconds(spec.sync_period_seconds)
    return scale_writes.check_writes(record or stored_writes(status.get("scaleWrites")),
                                     current, now, window)


def stored_writes(stored: Any) -> scale_writes.WriteRecord:
    try:
        return scale_writes.record_from_status(
            ScaleWrites.model_validate(dict(stored)) if stored else None)
    except ValidationError:
        return scale_writes.WriteRecord()  # damaged: start again from what the target says


def stored_history(stored: Any) -> StabilizationHistory | None:
    if not stored:
        return None
    try:
        return StabilizationHistory.model_validate(dict(stored))
    except ValidationError:
        return None  # a damaged history is dropped: the window simply starts again


def scale_write(spec: AdaptiveServiceSpec, snapshot: Snapshot, outcome: SyncOutcome,
                memory: Memory, replicas: int, now: float) -> ScaleWrite:
    assert snapshot.current is not None and outcome.decision is not None
    ref = spec.scale_target_ref
    pending = scale_writes.with_pending(memory.record or scale_writes.WriteRecord(),
                                        replicas, snapshot.current, now)
    refused = replace(memory, record=replace(pending, pending=None))
    assert pending.pending is not None
    event = Event("Normal", "Scaled", f"{ref.kind} {ref.name} {snapshot.current} -> "
                  f"{replicas}: {outcome.decision.message}", scale_writes.said_key(pending.pending))
    return ScaleWrite(replicas, snapshot.current, pending, scale_writes.made(pending, replicas),
                      event, status_write(spec, recorded(snapshot, pending), outcome, refused,
                                          None, now))


def recorded(snapshot: Snapshot, pending: scale_writes.WriteRecord) -> Snapshot:
    """The snapshot with status as it stands once the write-ahead record is in it."""
    return replace(snapshot, status=merged(snapshot.status,
                                           {"scaleWrites": writes_status(pending)}))


def worth_writing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing `new` changes status beyond the noise of the forecast's slow numbers."""
    return (status_changed(without_slow_numbers(old), without_slow_numbers(new))
            or slow_numbers_moved(old, new))


def status_write(spec: AdaptiveServiceSpec, snapshot: Snapshot, outcome: SyncOutcome,
                 memory: Memory, scaled_at: float | None, now: float) -> StatusWrite:
    """The status patch, with the stabilization history when status is written anyway or the
    history changed; None when status already says it all."""
    old = snapshot.status
    writes = writes_status(memory.record) if memory.record is not None else None
    new = status_update(old, snapshot.generation, outcome, snapshot.current, writes, scaled_at,
                        now)
    new.update(forecast_fields(old, snapshot.forecast))
    new.update(coupling_fields(old, snapshot.coupled))
    conditions = (sync_conditions(outcome) + forecast_and_coupling(spec, snapshot)
                  + list(snapshot.healing_conditions))
    new["conditions"] = merge_conditions(old.get("conditions") or [], conditions, now,
                                         snapshot.generation or 0)
    changed = worth_writing(old, new)
    history = history_to_write(memory.history, outcome, memory.written, changed)
    if history is not None:
        new["history"] = history_to_status(history).model_dump(by_alias=True, mode="json")
        memory = replace(memory, written=history)
    return StatusWrite(new if changed or history is not None else None, memory)


def forecast_and_coupling(spec: AdaptiveServiceSpec, snapshot: Snapshot) -> list[Condition]:
    """ForecastReliable and CouplingTrusted. A blocked sync evaluates neither: the last
    verdict shown again would be stale data presented as current."""
    old = snapshot.status
    if snapshot.blocker is None:
        return (forecast_conditions(old, snapshot.forecast)
                + coupling_conditions(old, snapshot.coupled))
    predictive = spec.predictive is not None and spec.predictive.enabled
    return ([not_evaluated_condition()] if predictive else forecast_conditions(old, None)) + (
        [coupling_not_evaluated()] if spec.coupling else coupling_conditions(old, None))


def writes_status(record: scale_writes.WriteRecord) -> dict[str, Any]:
    """The record for a merge patch: every key, None for those unset (which deletes them)."""
    found: dict[str, Any] = scale_writes.record_to_status(record).model_dump(by_alias=True,
                                                                            mode="json")
    return found


def invalid_spec(status: Mapping[str, Any], generation: int | None, message: str,
                 now: float) -> dict[str, Any] | None:
    """The status patch for a spec the schema let through but the model refuses (reported,
    never acted on); None when status says so already."""
    conditions = [Condition("Ready", "False", "InvalidSpec", message.replace("\n", " "))]
    merged = merge_conditions(status.get("conditions") or [], conditions, now, generation or 0)
    if merged == status.get("conditions"):
        return None
    return {"conditions": merged, "observedGeneration": generation or 0}
