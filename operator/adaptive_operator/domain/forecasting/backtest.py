"""Rolling-origin backtest: how each model would have done on this service's own recent past.

Origins step back from the end of the history by one refit interval each. At every origin a
model is fitted on the data before it and run forward exactly as the online tracker would run it
(level correction included), scored at the decision horizon. MASE divides the mean absolute error
by the in-sample mean absolute error of seasonal naive; `relative` divides it by seasonal naive's
error on the same rows at the same horizon. The lowest error wins `Auto`.

The guard (`tracker.ErrorWindow.relative_error`) holds the chosen model to a simpler baseline, its
`Reference`: seasonal naive for a fitted model, and, for seasonal naive itself (which cannot be
better than itself: with its level correction it only differs from it by noise), persistence, the
last value carried forward, which is what reactive scaling assumes. Both are "the value `lag`
rows before the target", so one arithmetic scores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from adaptive_operator.domain.forecasting.baseline import Resolution, fitting_series, path_from
from adaptive_operator.domain.forecasting.models import ModelKind
from adaptive_operator.domain.forecasting.tracker import simulate

FloatArray = NDArray[np.float64]

ALPHAS = (0.2, 0.5, 0.8)
CANDIDATES = (ModelKind.SEASONAL_NAIVE, ModelKind.HOLT_WINTERS, ModelKind.MSTL)


@dataclass(frozen=True)
class Reference:
    """The baseline the guard holds a model to: its name and how many rows back it looks."""

    name: str
    lag: int


def reference_for(kind: ModelKind, period: int, horizon: int) -> Reference:
    """Seasonal naive (the same phase, whole seasons back) for a fitted model; persistence (the
    value `horizon` rows back) for seasonal naive itself."""
    if kind is ModelKind.SEASONAL_NAIVE:
        return Reference("persistence", horizon)
    return Reference("seasonal naive", period * math.ceil(horizon / period))


@dataclass(frozen=True)
class Score:
    kind: ModelKind
    alpha: float
    mae: float
    mase: float
    relative: float  # MAE over seasonal naive's on the same rows (for every model)
    errors: FloatArray
    reference: FloatArray  # errors of the model's guard reference on the same rows


@dataclass(frozen=True)
class Plan:
    """Where and how to backtest: horizon and span in fine rows."""

    resolution: Resolution
    horizon: int
    span: int
    origins: int
    clip: float


def lag_errors(y: FloatArray, first: int, last: int, lag: int, horizon: int) -> FloatArray:
    """Errors of forecasting row t + horizon by the value `lag` rows before it, for t in
    [first, last)."""
    targets = np.arange(first, last) + horizon
    return np.asarray(y[targets] - y[targets - lag], dtype=np.float64)


def naive_errors(y: FloatArray, first: int, last: int, period: int, horizon: int) -> FloatArray:
    """Errors of seasonal naive forecasting row t + horizon from row t, for t in [first, last)."""
    lag = reference_for(ModelKind.HOLT_WINTERS, period, horizon).lag
    return lag_errors(y, first, last, lag, horizon)


def naive_scale(y: FloatArray, period: int) -> float:
    """In-sample mean absolute error of the one-season naive forecast: the MASE denominator."""
    diffs = np.abs(y[period:] - y[:-period])
    finite = diffs[np.isfinite(diffs)]
    return float(np.mean(finite)) if len(finite) else math.nan


def origins(n: int, plan: Plan) -> list[int]:
    """Origins, newest last, that leave two full primary cycles of training data before them."""
    need = 2 * plan.resolution.fine_periods[0] + 10
    found = [n - plan.horizon - k * plan.span for k in range(1, plan.origins + 1)]
    return sorted(o for o in found if o >= need)


def _mae(values: FloatArray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(np.mean(finite)) if len(finite) else math.inf


# The fitting series at each origin, computed once for every model of a ranking.
Cleaned = dict[int, FloatArray | None]


def _errors_at(
    y: FloatArray, origin: int, kind: ModelKind, plan: Plan, cleaned: Cleaned
) -> list[FloatArray]:
    """Per alpha in ALPHAS, the error matrix of this model run forward from `origin`."""
    steps = plan.span + plan.horizon
    if origin not in cleaned:
        cleaned[origin] = fitting_series(y[:origin], plan.resolution)
    base = path_from(origin, cleaned[origin], kind, plan.resolution, steps)
    actual = y[origin : origin + steps]
    if base is None:
        return [np.full((plan.span, plan.horizon), np.nan) for _ in ALPHAS]
    return [simulate(actual, base, alpha, plan.clip, plan.horizon) for alpha in ALPHAS]


def score_model(
    y: FloatArray, kind: ModelKind, plan: Plan, cleaned: Cleaned | None = None
) -> Score | None:
    """The model's backtest at its best level-correction rate; None without a usable origin."""
    starts = origins(len(y), plan)
    if not starts:
        return None
    period = plan.resolution.fine_periods[0]
    cleaned = {} if cleaned is None else cleaned
    runs = [_errors_at(y, o, kind, plan, cleaned) for o in starts]
    naive = np.concatenate(
        [naive_errors(y, o, o + plan.span, period, plan.horizon) for o in starts]
    )
    lag = reference_for(kind, period, plan.horizon).lag
    reference = np.concatenate([lag_errors(y, o, o + plan.span, lag, plan.horizon) for o in starts])
    best = _best_alpha(runs)
    errors = np.concatenate([r[best] for r in runs])
    mae = _mae(errors[:, -1])
    return Score(
        kind=kind,
        alpha=ALPHAS[best],
        mae=mae,
        mase=_in_units_of(mae, naive_scale(y[: starts[0]], period)),
        relative=_in_units_of(mae, _mae(naive)),
        errors=errors,
        reference=reference,
    )


def _best_alpha(runs: list[list[FloatArray]]) -> int:
    """The index in ALPHAS of the rate whose last-step errors, over every origin, have the
    smallest mean."""
    return min(range(len(ALPHAS)), key=lambda a: _mae(np.concatenate([r[a][:, -1] for r in runs])))


def _in_units_of(mae: float, unit: float) -> float:
    """`mae` over `unit`; infinite when the unit is no error at all."""
    return mae / unit if unit > 0 else math.inf


def rank(y: FloatArray, kinds: Sequence[ModelKind], plan: Plan) -> list[Score]:
    """Scores of the models that could be backtested, best (lowest error) first."""
    cleaned: Cleaned = {}
    scores = [s for s in (score_model(y, k, plan, cleaned) for k in kinds) if s is not None]
    return sorted(scores, key=lambda s: (s.mae, CANDIDATES.index(s.kind)))
