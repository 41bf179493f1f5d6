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
