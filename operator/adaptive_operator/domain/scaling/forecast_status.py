"""What a sync's forecast shows in status: `status.forecast` and the ForecastReliable condition.

Pure; the gauges are published by handlers/forecast_report.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptive_operator.api.base import MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.predictive import ForecastPointStatus, PredictiveStatus
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.plan import replacing
from adaptive_operator.domain.scaling.predictive import PredictiveState

# The guard's reasons (domain/scaling/predictive.py, forecasting/engine.py) by their opening words.
REASONS = (
    ("too little history", "TooLittleHistory"),
    ("no seasonality", "NoSeasonality"),
    ("history backfill failed", "HistoryUnavailable"),
    ("no data", "HistoryUnavailable"),
    ("forecast warming up", "WarmingUp"),
)


def _camel(reference: str) -> str:
    """'seasonal naive' -> 'SeasonalNaive'; an unnamed reference is seasonal naive's."""
    return "".join(word.capitalize() for word in (reference or "seasonal naive").split())


def condition_reason(reason: str, reference: str = "") -> str:
    if reason.endswith("not better"):
        return f"NotBetterThan{_camel(reference)}"
    for opening, camel in REASONS:
        if reason.startswith(opening):
            return camel
    return "ForecastUnreliable"


def reliable_condition(forecast: ServiceForecast) -> Condition:
    trusted = [m for m in forecast.metrics if m.state.reliable]
    if trusted:
        lead = forecast.lead if forecast.lead.state.reliable else trusted[0]
        return Condition("ForecastReliable", "True",
                         f"ForecastBetterThan{_camel(lead.state.reference)}",
                         f"metric {lead.metric}: {lead.state.model} forecast is used "
                         f"({lead.state.reason}){_ignored(forecast)}")
    lead = forecast.lead
    # With the persistence band's floor in use, scaling is not plain reactive: say which it is.
    banded = lead.state.persistence_rise is not None
    return Condition("ForecastReliable", "False",
                     condition_reason(lead.state.reason, lead.state.reference),
                     f"metric {lead.metric}: {lead.state.reason}; scaling is reactive"
                     f"{', with the band as its floor' if banded else ' only'}"
                     f"{_ignored(forecast)}")


def _ignored(forecast: ServiceForecast) -> str:
    """What the history backfills left out (as gaps), metric by metric."""
    notes = [f"{m.metric}'s history {m.ignored}" for m in forecast.metrics if m.ignored]
    return "; " + "; ".join(notes) if notes else ""


def disabled_condition() -> Condition:
    return Condition("ForecastReliable", "False", "PredictiveDisabled",
                     "predictive scaling is not enabled; scaling is reactive only")


def not_evaluated_condition() -> Condition:
    return Condition("ForecastReliable", "Unknown", "NotEvaluated",
                     "the forecast is not evaluated while scaling is blocked")


def forecast_status(forecast: ServiceForecast) -> dict[str, Any]:
    lead = forecast.lead
    state = lead.state
    model = status_from_state(state).model_copy(update={
        "metric": lead.metric,
        "look_ahead_seconds": forecast.look_ahead.seconds,
        "look_ahead_source": forecast.look_ahead.source,
        "summary": str(state.model) if state.reliable and state.model else "Reactive",
        "backtest_mase": _rounded(state.backtest_mase),
        "persistence_rise": _rounded(state.persistence_rise),
        "forecast": [p.model_copy(update={"p50": _rounded(p.p50), "p_high": _rounded(p.p_high)})
                     for p in status_from_state(state).forecast],
    })
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _rounded(value: float | None) -> float | None:
    # Status is written only when it changes: noise in the 4th significant digit is no change.
    return None if value is None else float(f"{value:.4g}")


def status_from_state(state: PredictiveState) -> PredictiveStatus:
    """Status from the advisor's state (the advisor lives in the domain, status in the API)."""
    return PredictiveStatus(
        model=state.model,
        backtest_mase=state.backtest_mase,
        reliable=state.reliable,
        reason=state.reason,
        forecast=[
            ForecastPointStatus(offset_seconds=p.offset_seconds, p50=p.p50, p_high=p.p_high)
            for p in state.forecast[:MAX_LOOK_AHEAD_ROWS]
        ],
    )


# The forecast's slow numbers: they move a little every sync, and a status write for that alone
# was about half of all status writes at scale (an API call each, and a watch event that every
# replica of the operator processes). A move of over NUMBERS_TOLERANCE is written at once (a
# downstream service adds its upstream's persistence rise, read from status, to its own reading);
# a smaller one goes with the next write (what status shows stays within the tolerance).
SLOW_NUMBERS = ("persistenceRise", "backtestMase")
NUMBERS_TOLERANCE = 0.1


def without_slow_numbers(status: Mapping[str, Any]) -> dict[str, Any]:
    """`status` with its forecast's slow numbers left out."""
    shown = status.get("forecast")
    if not isinstance(shown, Mapping):
        return dict(status)
    return {**status, "forecast": {k: v for k, v in shown.items() if k not in SLOW_NUMBERS}}


def slow_numbers_moved(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a slow number of status.forecast moved by over the tolerance, came or went."""
    before, after = old.get("forecast"), new.get("forecast")
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return False  # the forecast itself came or went: the rest of status says so
    return any(_moved(before.get(k), after.get(k)) for k in SLOW_NUMBERS)


def _moved(before: Any, after: Any) -> bool:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return bool(before != after)
    return abs(after - before) > NUMBERS_TOLERANCE * max(abs(before), abs(after))


def forecast_fields(old: Mapping[str, Any], forecast: ServiceForecast | None) -> dict[str, Any]:
    if forecast is not None:
        shown = forecast_status(forecast)
        return {"forecast": replacing(old.get("forecast"), shown)}
    # Predictive was switched off: a merge patch's None deletes what was shown.
    return {"forecast": None} if old.get("forecast") else {}


def forecast_conditions(old: Mapping[str, Any],
                        forecast: ServiceForecast | None) -> list[Condition]:
    if forecast is not None:
        return [reliable_condition(forecast)]
    had = any(c.get("type") == "ForecastReliable" for c in old.get("conditions") or [])
    return [disabled_condition()] if had else []
