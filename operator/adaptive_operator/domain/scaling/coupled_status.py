"""What status, Events and the decision's floor take from a coupled forecast (pure).

handlers/coupled.py reads the upstreams and runs the domain's `CoupledForecaster`; this module
turns its verdict into the `Coupled` a sync plans with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.base import MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.coupling import CouplingSpec, CouplingStatus, UpstreamRelation
from adaptive_operator.api.predictive import ForecastPointStatus
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.scaling.coupling import CouplingState, Relation
from adaptive_operator.domain.scaling.plan import replacing

CONDITION = "CouplingTrusted"
WARNINGS = ("CouplingCycle", "UpstreamNotFound", "UpstreamMetricNotFound")


@dataclass(frozen=True)
class Coupled:
    floor: int | None
    source: str  # for the decision's message
    status: CouplingStatus
    condition: Condition


def refused(spec: AdaptiveServiceSpec, reason: str, message: str) -> Coupled:
    status = CouplingStatus(reason=message, summary="Refused",
                            upstreams=[UpstreamRelation(service=c.service, metric=c.metric)
                                       for c in spec.coupling or []])
    return Coupled(None, "", status, Condition(CONDITION, "False", reason, message))


def waiting_for_own_history(spec: AdaptiveServiceSpec) -> Coupled:
    """Refused until the first metric's own history is there (the relation is learned on it)."""
    return refused(spec, "OwnHistoryUnavailable", f"metric {spec.metrics[0].name}'s history is "
                   "not there yet (warming up) or could not be read; coupling waits for it")


def reported(spec: AdaptiveServiceSpec, state: CouplingState, floor: int | None,
             period: float) -> Coupled:
    couplings = spec.coupling or []
    relation = state.relation
    names = ",".join(c.service for c in couplings)
    status = CouplingStatus(
        trusted=state.trusted, reason=state.reason,
        upstreams=_upstreams(couplings, relation, period),
        intercept=_rounded(relation.intercept) if relation else None,
        relative_error=_rounded(state.relative_error), floor_replicas=floor,
        forecast=_forecast_points(state.forecast, period),
        summary=f"{names}: {'Trusted' if state.trusted else 'Untrusted'}")
    return Coupled(floor, f"the coupled forecast from {names}", status, _condition(state, names))


def _upstreams(couplings: Sequence[CouplingSpec], relation: Relation | None,
               period: float) -> list[UpstreamRelation]:
    """Each upstream with its learned ratio and lag (none before a relation is learned)."""
    return [UpstreamRelation(
        service=c.service, metric=c.metric,
        ratio=_rounded(relation.ratios[i]) if relation else None,
        lag_seconds=relation.lags[i] * period if relation else None)
        for i, c in enumerate(couplings)]


def _forecast_points(forecast: Sequence[float], period: float) -> list[ForecastPointStatus]:
    # Up to the first row without a forecast (an upstream's reading missing at its lag):
    # a gap written as 0 would be read downstream as a forecast of no load.
    return [ForecastPointStatus(offset_seconds=(h + 1) * period, p50=_rounded(p) or 0.0,
                                p_high=_rounded(p) or 0.0)
            for h, p in enumerate(takewhile(math.isfinite, forecast[:MAX_LOOK_AHEAD_ROWS]))]


def _condition(state: CouplingState, names: str) -> Condition:
    """CouplingTrusted: whether the coupled forecast is used, and why not."""
    if state.trusted:
        return Condition(CONDITION, "True", "CoupledBetterThanOwnForecast",
                         f"the forecast from {names} is used ({state.reason})")
    reason = "NotBetterThanOwnForecast" if "not better" in state.reason else \
        "TooLittleSharedHistory"
    return Condition(CONDITION, "False", reason, f"the forecast from {names} is "
                     f"ignored: {state.reason}")


def _rounded(value: float | None) -> float | None:
    # Status is written only when it changes: noise in the 4th significant digit is no change.
    return None if value is None or not math.isfinite(value) else float(f"{value:.4g}")


def raised(floor: int | None, source: str, coupled: Coupled | None) -> tuple[int | None, str]:
    """The decision's floor: the coupled one when it is higher."""
    if coupled is None or coupled.floor is None or (floor is not None and floor >= coupled.floor):
        return floor, source
    return coupled.floor, coupled.source


def status_fields(old: Mapping[str, Any], coupled: Coupled | None) -> dict[str, Any]:
    if coupled is not None:
        return {"coupling": replacing(old.get("coupling"), coupled.status.model_dump(
            by_alias=True, mode="json", exclude_none=True))}
    return {"coupling": None} if old.get("coupling") else {}  # uncoupled: remove what was shown


def conditions(old: Mapping[str, Any], coupled: Coupled | None) -> list[Condition]:
    if coupled is not None:
        return [coupled.condition]
    had = any(c.get("type") == CONDITION for c in old.get("conditions") or [])
    return [Condition(CONDITION, "False", "NotCoupled", "no coupling in the spec")] if had else []


def not_evaluated() -> Condition:
    return Condition(CONDITION, "Unknown", "NotEvaluated",
                     "the coupled forecast is not evaluated while scaling is blocked")


def verdict_event(old_status: Mapping[str, Any], coupled: Coupled | None) -> Event | None:
    """An Event when the coupling's verdict differs from the condition status shows."""
    if coupled is None:
        return None
    old: Any = next((c for c in old_status.get("conditions") or []
                     if c.get("type") == CONDITION), {})
    new = coupled.condition
    if (old.get("status"), old.get("reason")) == (new.status, new.reason):
        return None
    return Event("Warning" if new.reason in WARNINGS else "Normal", new.reason, new.message)
