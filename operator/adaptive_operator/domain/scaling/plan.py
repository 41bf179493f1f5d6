"""What one AdaptiveService sync does, decided from its outcome: a pure function, no I/O.

The handler observes (scale, pods, readings, forecast), `algorithm.decide` decides the replicas,
and this module turns the outcome into what is carried out: the replicas to write, the Events,
the problem to report, and the status fields. The handler then applies exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adaptive_operator.api.base import MAX_METRICS, STATUS_NAME_LENGTH, truncated
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.scaling.algorithm import ScalingDecision, ScalingHistory
from adaptive_operator.domain.scaling.config import history_changed
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome
from adaptive_operator.domain.scaling.writes import said_key


@dataclass(frozen=True)
class Actions:
    """The replicas to write (None: none), the Events to post, the problem to report."""

    scale_to: int | None = None
    events: tuple[Event, ...] = ()
    problem: Problem | None = None


def plan_actions(mode: str, target: str, outcome: SyncOutcome, current: int | None,
                 leading: bool) -> Actions:
    """Scale in Active mode when nothing stands in the way, recommend in DryRun; `target` is
    the workload as a person reads it ("Deployment web")."""
    events, problem = _announced(target, outcome), _problem(outcome)
    decision = outcome.decision
    if decision is None or current is None or decision.desired_replicas == current:
        return Actions(None, events, problem)
    if mode == "Active":
        free = outcome.conflict is None and leading
        return Actions(decision.desired_replicas if free else None, events, problem)
    if mode == "DryRun":
        events += (Event("Normal", "DryRunRecommendation",
                         f"would scale {current} -> {decision.desired_replicas}: "
                         f"{decision.message}"),)
    return Actions(None, events, problem)


def _announced(target: str, outcome: SyncOutcome) -> tuple[Event, ...]:
    """A write found made but never recorded (the operator restarted in between)."""
    done = outcome.writes.completed if outcome.writes else None
    if done is None:
        return ()
    # Keyed as the write's own Event: if that was said before the restart, this is not.
    return (Event("Normal", "Scaled", f"{target} {done.previous} -> {done.replicas}: made "
                  "before the operator restarted, found applied and recorded now",
                  said_key(done)),)


def _problem(outcome: SyncOutcome) -> Problem | None:
    return outcome.blocker or outcome.metric_problem or outcome.conflict


def status_update(old: Mapping[str, Any], generation: Any, outcome: SyncOutcome,
                  current: int | None, writes: dict[str, Any] | None,
                  scaled_at: float | None, now: float) -> dict[str, Any]:
    """The status fields of the sync itself (conditions and forecast are added by the caller)."""
    new: dict[str, Any] = {"observedGeneration": generation}
    if writes is not None:
        new["scaleWrites"] = writes
    if current is not None:
        new["currentReplicas"] = current
    if outcome.decision is not None:
        new.update(decision_fields(old, outcome.decision, outcome, now))
    if scaled_at is not None:
        new["lastScaleTime"] = timestamp(scaled_at)
    return new


def decision_status(decision: ScalingDecision, outcome: SyncOutcome,
                    now: float) -> dict[str, Any]:
    proposals = dict(decision.proposals)
    metrics = [
        {"name": r.name, "value": r.value, "targetPerReplica": r.target_per_replica,
         "proposedReplicas": proposals.get(r.name)}
        for r in outcome.readings[:MAX_METRICS]
    ]
    return {"time": timestamp(now), "replicas": decision.desired_replicas,
            "reason": truncated(decision.reason, STATUS_NAME_LENGTH),
            "message": truncated(decision.message),
            "metrics": metrics}


def decision_fields(old: Mapping[str, Any], decision: ScalingDecision,
                    outcome: SyncOutcome, now: float) -> dict[str, Any]:
    """desiredReplicas, and lastDecision when the decision differs from the one shown."""
    new: dict[str, Any] = {"desiredReplicas": decision.desired_replicas}
    last = old.get("lastDecision") or {}
    if (last.get("replicas"), last.get("reason")) != (decision.desired_replicas,
                                                      decision.reason):
        new["lastDecision"] = decision_status(decision, outcome, now)
    return new


def status_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Does writing `new` change what status holds (a merge patch's None keys are not kept)?"""
    return any(_as_stored(old.get(k)) != _as_stored(v) for k, v in new.items())


def merged(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """What a JSON merge patch makes of `old` (RFC 7386): None deletes, dicts merge."""
    result = dict(old)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            before = result.get(key)
            result[key] = merged(before if isinstance(before, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def replacing(before: Any, shown: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of a status section that makes it `shown`: None for each field shown
    before and not now, which deletes it. A merge patch keeps what it leaves out, so status
    would go on showing such a field (after a restart, the last process's persistence rise and
    backtest while the forecast warms up again), and every sync would find it gone and write."""
    gone = {key: None for key in before if key not in shown} if isinstance(before, Mapping) else {}
    return {**gone, **shown}


def _as_stored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def kept_history(mode: str, before: ScalingHistory, decision: ScalingDecision) -> ScalingHistory:
    """The stabilization history after a decision; when nothing is scaled (DryRun, Paused),
    the scale events seen before, not the imagined one of the decision."""
    if mode == "Active":
        return decision.history
    return ScalingHistory(decision.history.recommendations, before.scale_events)


def history_to_write(decided: ScalingHistory | None, outcome: SyncOutcome,
                     written: ScalingHistory | None, changed: bool) -> ScalingHistory | None:
    """The decided history, when status is written anyway or the history changed."""
    if outcome.decision is None or decided is None:
        return None
    if changed or history_changed(written, decided):
        return decided
    return None
