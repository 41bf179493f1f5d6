"""A status write for the forecast's slow numbers alone is not worth it (about half of all status
writes at scale were for a persistence rise moving in its 4th digit); a move over the tolerance,
or any other change of the forecast, is."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.domain.scaling.forecast_status import NUMBERS_TOLERANCE
from adaptive_operator.domain.scaling.sync import worth_writing

SHOWN = {"metric": "load", "reliable": False, "summary": "Reactive", "lookAheadSeconds": 15,
         "reason": "no seasonality detected; persistence band asks for 1", "forecast": [],
         "persistenceRise": 0.6891}


def status(**forecast: Any) -> dict[str, Any]:
    return {"desiredReplicas": 1, "forecast": {**SHOWN, **forecast}}


@pytest.mark.parametrize(("new", "worth"), [
    pytest.param(status(persistenceRise=0.7012), False, id="rise-moves-in-its-noise"),
    pytest.param(status(persistenceRise=0.6891 * (1 + NUMBERS_TOLERANCE) + 0.01), True,
                 id="rise-moves-past-the-tolerance"),
    pytest.param(status(persistenceRise=None), True, id="rise-gone"),
    pytest.param(status(backtestMase=0.4), True, id="mase-appears"),
    pytest.param(status(reason="no seasonality detected; persistence band asks for 2"), True,
                 id="reason-changes"),
    pytest.param(status(forecast=[{"offsetSeconds": 15, "p50": 3.0}]), True,
                 id="points-change-a-downstream-reads-them"),
    pytest.param(status(reliable=True, summary="ETS"), True, id="trust-changes"),
    pytest.param({"desiredReplicas": 1, "forecast": None}, True, id="predictive-switched-off"),
])
def test_only_a_change_beyond_the_slow_numbers_noise_is_worth_a_write(
        new: dict[str, Any], worth: bool) -> None:
    assert worth_writing(status(), new) is worth


def test_a_first_forecast_is_worth_a_write() -> None:
    assert worth_writing({"desiredReplicas": 1}, status())
    assert not worth_writing(status(), status())


def test_a_field_gone_from_the_forecast_is_deleted_once_then_not_written_again() -> None:
    """After a restart the forecast warms up again: no persistence rise, no backtest yet. A merge
    patch keeps what it leaves out, so unless the patch deletes them, status keeps showing the
    last process's numbers and every sync finds them gone and writes again."""
    from adaptive_operator.domain.scaling.forecast import MetricForecast, combine
    from adaptive_operator.domain.scaling.forecast_memory import WARMING_UP
    from adaptive_operator.domain.scaling.forecast_status import forecast_fields
    from adaptive_operator.domain.scaling.lookahead import LookAhead
    from adaptive_operator.domain.scaling.plan import merged
    from adaptive_operator.domain.scaling.predictive import PredictiveState

    warming = combine((MetricForecast("load", None, PredictiveState(reason=WARMING_UP)),),
                      LookAhead(15.0, "default"))
    before = status(backtestMase=0.4)  # written by the process before the restart
    patch = {"desiredReplicas": 1, **forecast_fields(before, warming)}
    assert worth_writing(before, patch)
    after = merged(before, patch)
    assert "persistenceRise" not in after["forecast"] and "backtestMase" not in after["forecast"]
    again = {"desiredReplicas": 1, **forecast_fields(after, warming)}
    assert not worth_writing(after, again)
