"""Forecasting models behind one small interface, with a registry keyed by the spec's enum.

Every model is fitted on a cleaned, evenly spaced series at the fitting resolution and returns a
`FittedModel` whose `path` extends the series. The short-horizon correction, quantiles and model
choice live elsewhere (`tracker`, `backtest`), so a model only has to be good at the seasonal shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

# The spec's enum: the API owns its values (they are the CRD's), the registry below maps them.
from adaptive_operator.api.predictive import ModelKind as ModelKind

FloatArray = NDArray[np.float64]



class FittedModel(Protocol):
    def path(self, steps: int) -> FloatArray:
        """Point forecasts for the `steps` points that follow the fitted series."""
        ...


class Forecaster(Protocol):
    @property
    def kind(self) -> ModelKind: ...

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> FittedModel: ...


@dataclass(frozen=True)
class RepeatedCycle:
    """Forecast made of the last observed cycle, repeated."""

    cycle: FloatArray

    def path(self, steps: int) -> FloatArray:
        return np.resize(self.cycle, steps).astype(np.float64)


@dataclass(frozen=True)
class SeasonalNaive:
    kind: ModelKind = ModelKind.SEASONAL_NAIVE

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> FittedModel:
        period = periods[0] if periods else 1
        return RepeatedCycle(np.asarray(y[-period:], dtype=np.float64))


@dataclass(frozen=True)
class StatsmodelsPath:
    """A statsmodels results object exposing `forecast(steps)`, plus seasonal terms to add."""

    results: object
    seasonal: tuple[FloatArray, ...] = ()

    def path(self, steps: int) -> FloatArray:
        out = np.asarray(self.results.forecast(steps), dtype=np.float64)  # type: ignore[attr-defined]
        for cycle in self.seasonal:
            out = out + np.resize(cycle, steps)
        return out


def _exponential_smoothing(y: FloatArray, period: int | None) -> object:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    # No trend term: drift between refits is absorbed by the tracker's level correction, and a
    # trend would cost 3-4x the fitting time (measured) and overshoot at a regime change.
    seasonal = "add" if period else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            y,
            trend=None,
            seasonal=seasonal,
            seasonal_periods=period,
            initialization_method="heuristic" if period else "estimated",
        )
        return model.fit()


@dataclass(frozen=True)
class HoltWinters:
    """Holt-Winters exponential smoothing (statsmodels) with additive seasonality."""

    kind: ModelKind = ModelKind.HOLT_WINTERS

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> FittedModel:
        period = periods[0] if periods and len(y) >= 2 * periods[0] + 10 else None
        return StatsmodelsPath(_exponential_smoothing(y, period))


@dataclass(frozen=True)
class MstlEts:
    """MSTL (statsmodels) for one or more seasonalities, ETS on the seasonally adjusted rest."""

    kind: ModelKind = ModelKind.MSTL

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> FittedModel:
        usable = tuple(p for p in periods if 2 * p < len(y))
        if not usable:
            return StatsmodelsPath(_exponential_smoothing(y, None))
        from statsmodels.tsa.seasonal import MSTL

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = MSTL(y, periods=usable).fit()
        seasonal = np.asarray(result.seasonal, dtype=np.float64).reshape(len(y), -1)
        adjusted = y - seasonal.sum(axis=1)
        cycles = tuple(
            _future_cycle(seasonal[:, i], period) for i, period in enumerate(usable)
        )
        return StatsmodelsPath(_exponential_smoothing(adjusted, None), cycles)


def _future_cycle(component: FloatArray, period: int) -> FloatArray:
    """The seasonal values for the next `period` points: the last cycle, phase-aligned."""
    return np.asarray(component[-period:], dtype=np.float64)


FORECASTERS: dict[ModelKind, Callable[[], Forecaster]] = {
    ModelKind.SEASONAL_NAIVE: SeasonalNaive,
    ModelKind.HOLT_WINTERS: HoltWinters,
    ModelKind.MSTL: MstlEts,
}


def forecaster(kind: ModelKind) -> Forecaster:
    """The registered forecaster for a named model (`Auto` is resolved by the backtest)."""
    if kind not in FORECASTERS:
        raise ValueError(f"no forecaster registered for {kind.value}")
    return FORECASTERS[kind]()
