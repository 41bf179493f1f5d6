"""Coupled scaling: the downstream's load forecast from its upstreams' loads.

A downstream service (an API behind a frontend) receives about `ratio` requests for each request
to its upstream, `lag` rows later. The relation is learned from the services' shared history by a
robust regression (statsmodels RLM with Huber's norm, so an incident on one side does not bend
it), the lag chosen among the candidates by the fit's mean absolute error. The ratios are then
taken from the rows that fit weighted as the robust fit weighs them, by total least squares on
their correlations: a regression of the downstream on a noisy upstream reading shrinks the ratio
towards zero (regression dilution: 1.4 to 2.6 for a true 3 on the e2e suite's real pods), which
costs nothing while the load stays in its usual range and undershoots exactly when it steps.
The upstream's known rows and its forecast then give an extra forecast of the downstream's load
over the look-ahead.

The extra forecast is held to the same kind of guard as the downstream's own: it is scored, row
by row, at the decision horizon against what the downstream's own forecast (persistence, when it
has none) said for the same row, and it is used only while its realised error is lower. It only
ever raises a floor: the decision never goes below what the downstream's own metrics ask for.

An upstream scaling on its persistence band (no trusted forecast of its own) provisions for its
last reading plus the band's rise, ahead of its median. While the relation is trusted, the
downstream's floor follows that too, through the relation: else it would scale a sync or two
after its upstream on a rise, on the median alone. That plan reads the relation beyond the
loads it was fitted on, where its ratio is least sure: noise in the upstream's readings still
biases it low, and the intercept takes up what it misses (2.46 and 1.84 for a true 3 and 0, on
the e2e suite's real pods, once). So the plan reads the higher of the relation and the
downstream's load grown in proportion to what its upstreams drive, from their means over the
rows fitted: the two agree there, and on a rise the proportion reads more exactly when the
intercept is positive. A downstream with load of its own, which the upstreams do not drive, is
then given more than it needs while an upstream rises on its band. Both floors add the
relation's realised errors' quantile.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import statsmodels.api as sm
from numpy.typing import NDArray

from adaptive_operator.domain.forecasting.tracker import mae_ratio

FloatArray = NDArray[np.float64]
TUKEY_REJECTION = 4.685


@dataclass(frozen=True)
class CouplingSettings:
    max_lag_rows: int = 12  # candidate lags 0..max_lag_rows
    min_rows: int = 48  # shared rows before the first fit
    window_rows: int = 2016  # the fit reads the last rows only (a week of 5-minute rows)
    refit_rows: int = 144
    min_scored: int = 12  # realised errors before the guard may trust the relation
    error_rows: int = 288
    quantile: float = 0.8


@dataclass(frozen=True)
class Relation:
    """downstream[t] ~ intercept + sum(ratios[i] * upstream_i[t - lags[i]])."""

    ratios: tuple[float, ...]
    lags: tuple[int, ...]
    intercept: float
    scale: float  # the fit's robust residual scale
    # The load the upstreams drive over the rows fitted: sum(ratios[i] * mean of upstream_i).
    # NaN: not known (the plan then reads the relation alone).
    driven: float = math.nan

    def describe(self, names: Sequence[str]) -> str:
        parts = [f"{r:.3g} x {n} ({lag} rows later)"
                 for r, n, lag in zip(self.ratios, names, self.lags, strict=True)]
        return " + ".join(parts) + f" + {self.intercept:.3g}"


@dataclass(frozen=True)
class UpstreamInput:
    """One upstream's rows, aligned with the downstream's (row k is the same time), its
    median forecast for the rows after the last one (empty: none, persistence is used), and,
    while its floor is its persistence band's, the rise over its last reading that floor
    provisions for (None: its floor is not the band's)."""

    history: Sequence[float | None]
    forecast: Sequence[float] = ()
    rise: float | None = None


@dataclass(frozen=True)
class CouplingState:
    """What status shows: whether the coupled forecast is trusted and why, the relation, the
    forecast over the look-ahead and the floor it asks for."""

    trusted: bool = False
    reason: str = "no relation fitted: too little shared history, or an upstream that never moved"
    relation: Relation | None = None
    relative_error: float | None = None  # coupled MAE / the own forecast's MAE, same rows
    forecast: tuple[float, ...] = ()
    floor_replicas: int | None = None


def _column(values: Sequence[float | None], start: int, stop: int) -> FloatArray:
    return np.array([math.nan if v is None else float(v) for v in values[start:stop]],
                    dtype=np.float64)


@dataclass(frozen=True)
class _Fit:
    params: FloatArray
    scale: float  # robust: discounts the rows that fit worst
    mean_abs_error: float  # every row counts, the few that tell lags apart among them
    inliers: FloatArray  # [y, columns...] of the rows fitted, outliers left out


def _rlm(y: FloatArray, columns: Sequence[FloatArray]) -> _Fit | None:
    """Huber-robust least squares of y on the columns plus a constant; None on too few rows."""
    x = np.column_stack([np.ones(len(y)), *columns])
    rows = np.isfinite(y) & np.isfinite(x).all(axis=1)
    if rows.sum() < x.shape[1] + 8 or (np.ptp(x[rows][:, 1:], axis=0) == 0).any():
        return None  # too few rows, or an upstream that never moved: nothing to learn
    fit = sm.RLM(y[rows], x[rows], M=sm.robust.norms.HuberT()).fit()
    residuals = np.asarray(fit.resid, dtype=np.float64)
    # Outliers are the rows beyond Tukey's biweight rejection point (4.685 robust standard
    # deviations): an incident's rows, not the tails of the noise.
    # (A perfect fit has a scale of 0 and residuals of rounding error: all rows are inliers.)
    slack = 1e-9 * float(np.abs(y[rows]).max())
    inliers = np.abs(residuals) <= TUKEY_REJECTION * float(fit.scale) + slack
    return _Fit(np.asarray(fit.params, dtype=np.float64), float(fit.scale),
                float(np.abs(residuals).mean()),
                np.column_stack([y[rows], x[rows][:, 1:]])[inliers])


def _total_least_squares(fit: _Fit) -> tuple[FloatArray, float, float] | None:
    """The ratios and intercept of the hyperplane closest to the fit's inliers, each variable in
    units of its own spread: it allows for noise in the upstream readings as in the downstream's
    (in proportion to each one's spread), where least squares blames the downstream alone and so
    dilutes the ratios. Also the load the upstreams drive at their means. None when a variable
    has no spread among the inliers."""
    if len(fit.inliers) < fit.inliers.shape[1] + 8:
        return None
    covariance = np.atleast_2d(np.cov(fit.inliers, rowvar=False))
    spread = np.sqrt(np.diag(covariance))
    if not (spread > 0).all():
        return None
    _, vectors = np.linalg.eigh(covariance / np.outer(spread, spread))
    normal = vectors[:, 0]  # the direction of least variance: across the hyperplane
    if abs(normal[0]) < 1e-9:
        return None  # the hyperplane does not involve the downstream: no relation
    ratios = -normal[1:] / normal[0] * spread[0] / spread[1:]
    means = fit.inliers.mean(axis=0)
    driven = float(ratios @ means[1:])
    return ratios, float(means[0]) - driven, driven


def _lagged(ups: Sequence[FloatArray], lags: Sequence[int], max_lag: int) -> list[FloatArray]:
    n = len(ups[0])
    return [u[max_lag - lag: n - lag] for u, lag in zip(ups, lags, strict=True)]


def _best_lag(down: FloatArray, ups: Sequence[FloatArray], lags: list[int], which: int,
              max_lag: int) -> int | None:
    """The lag of upstream `which` whose joint fit (the others at their lags) leaves the
    smallest mean absolute error. Not the robust scale: on a step load only the rows just after
    the step tell the lags apart, and a robust scale discounts exactly those rows.
    Only lags whose fit gives the upstream a positive ratio are candidates: on a periodic load
    the lag half a period from the true one fits as well with the sign flipped (it won in 21
    of 40 seeds on a 20-row wave with lags up to 13), and such a relation is refused anyway.
    With no positive lag the best fit stays, so that status shows the negative ratio."""
    positive: list[tuple[float, int]] = []
    scores: list[tuple[float, int]] = []
    for lag in range(max_lag + 1):
        trial = [*lags[:which], lag, *lags[which + 1:]]
        fit = _rlm(down[max_lag:], _lagged(ups, trial, max_lag))
        if fit is not None:
            scores.append((fit.mean_abs_error, lag))
            if fit.params[1 + which] > 0:
                positive.append(scores[-1])
    return min(positive or scores)[1] if scores else None


def fit_relation(downstream: Sequence[float | None],
                 upstreams: Sequence[Sequence[float | None]], max_lag: int) -> Relation | None:
    """The lags by coordinate descent (each upstream's in turn, the others held: for one
    upstream a single pass), then the ratios jointly (fan-in); None when the rows are too few."""
    n = len(downstream)
    if not upstreams or n <= max_lag + 8 or any(len(u) != n for u in upstreams):
        return None
    down = _column(downstream, 0, n)
    ups = [_column(u, 0, n) for u in upstreams]
    lags = _best_lags(down, ups, max_lag)
    return None if lags is None else _joint_relation(down, ups, lags, max_lag)


def _best_lags(down: FloatArray, ups: Sequence[FloatArray], max_lag: int) -> list[int] | None:
    """The lags by coordinate descent: each upstream's in turn, the others held (for one
    upstream a single pass); None when some lag has no fit."""
    lags = [0] * len(ups)
    for _ in range(1 if len(ups) == 1 else 2):
        for which in range(len(ups)):
            lag = _best_lag(down, ups, lags, which, max_lag)
            if lag is None:
                return None
            lags[which] = lag
    return lags


def _joint_relation(down: FloatArray, ups: Sequence[FloatArray], lags: list[int],
                    max_lag: int) -> Relation | None:
    """The ratios of every upstream at its lag and the intercept, fitted jointly (fan-in)."""
    fit = _rlm(down[max_lag:], _lagged(ups, lags, max_lag))
    plane = _total_least_squares(fit) if fit is not None else None
    if fit is None or plane is None:
        return None
    ratios, intercept, driven = plane
    return Relation(tuple(float(r) for r in ratios), tuple(lags), intercept, fit.scale, driven)


def _last_finite(values: Sequence[float | None], row: int) -> float:
    for k in range(row, max(-1, row - 64), -1):
        value = values[k]
        if value is not None and math.isfinite(value):
            return float(value)
    return math.nan


def upstream_value(upstream: UpstreamInput, row: int, last: int) -> float:
    """The upstream at `row`: read when it is past, forecast (or the last reading) when not."""
    if row <= last:
        value = upstream.history[row] if row >= 0 else None
        return math.nan if value is None else float(value)
    ahead = row - last - 1
    if ahead < len(upstream.forecast):
        return float(upstream.forecast[ahead])
    return _last_finite(upstream.history, last)


def predict(relation: Relation, upstreams: Sequence[UpstreamInput], last: int,
            horizon: int) -> FloatArray:
    """The downstream's median for rows last+1..last+horizon."""
    out = np.full(horizon, relation.intercept)
    for ratio, lag, upstream in zip(relation.ratios, relation.lags, upstreams, strict=True):
        out += ratio * np.array([upstream_value(upstream, last + h - lag, last)
                                 for h in range(1, horizon + 1)])
    return out


def planned(relation: Relation, upstreams: Sequence[UpstreamInput], last: int,
            horizon: int) -> float | None:
    """The downstream's highest load over rows last+1..last+horizon when each upstream on its
    persistence band runs at the load its floor provisions for (its last reading plus the
    band's rise) from its next row on; None when no upstream is on its band."""
    if all(u.rise is None for u in upstreams):
        return None
    plans = [u if u.rise is None else
             replace(u, forecast=(_last_finite(u.history, last) + u.rise,) * horizon)
             for u in upstreams]
    path = predict(relation, plans, last, horizon)
    return _highest(np.fmax(path, in_proportion(relation, path)))


def in_proportion(relation: Relation, path: FloatArray) -> FloatArray:
    """The downstream's load along `path` (the relation's reading) when it grows in proportion
    to the load its upstreams drive, from where the fitted rows had them on average (NaN where
    that is not known). On a rise beyond the rows fitted this reads more than the relation
    when its intercept is positive; see the module's docstring for why that is the one to
    plan for."""
    if not relation.driven > 0:
        return np.full(len(path), math.nan)
    driven = path - relation.intercept
    return np.asarray((relation.intercept + relation.driven) * driven / relation.driven,
                      dtype=np.float64)


def _highest(path: FloatArray) -> float | None:
    """The highest known point. A gap in an upstream's readings at a lagged row leaves that
    row unknown: the others still count (None when none is known)."""
    known = path[np.isfinite(path)]
    return float(known.max()) if known.size else None


def _replicas(load: float, target: float) -> int:
    """Replicas for `load` at `target` per replica (a load a hair over a multiple adds none)."""
    return max(0, math.ceil(load / target - 1e-9))


class CoupledForecaster:
    """One downstream's coupled forecast, fed once per row with the whole history so far (it
    reads only the rows it has not seen); keeps the relation and the realised errors."""

    def __init__(self, settings: CouplingSettings | None = None) -> None:
        self.settings = settings or CouplingSettings()
        self.state = CouplingState()
        self.relation: Relation | None = None
        self._fitted_at = -1
        self._fitted_usable = 0
        self._usable = 0
        self._seen = 0
        # Row -> (coupled median, the own forecast's median or persistence) made for it.
        self._pending: dict[int, tuple[float, float]] = {}
        size = self.settings.error_rows
        self._errors: deque[tuple[float, float, float]] = deque(maxlen=size)

    def advise(self, downstream: Sequence[float | None], upstreams: Sequence[UpstreamInput],
               own_median: float | None, horizon: int, target_per_replica: float) -> int | None:
        """The floor the trusted coupled forecast asks for, or None. `own_median` is the
        downstream's own forecast for the decision horizon (None: it has none)."""
        last = len(downstream) - 1
        self._score(downstream, last)
        self._refit(downstream, upstreams, last)
        if self.relation is None:
            self.state = CouplingState()
            return None
        point = predict(self.relation, upstreams, last, horizon)
        reference = own_median if own_median is not None else _last_finite(downstream, last)
        self._pending[last + horizon] = (float(point[-1]), reference)
        self.state = self._following(self._judge(point, target_per_replica), upstreams, last,
                                     horizon, target_per_replica)
        return self.state.floor_replicas if self.state.trusted else None

    def _following(self, state: CouplingState, upstreams: Sequence[UpstreamInput], last: int,
                   horizon: int, target: float) -> CouplingState:
        """A trusted state's floor raised to what the upstreams' floors plan for."""
        if not state.trusted or self.relation is None:
            return state
        load = planned(self.relation, upstreams, last, horizon)
        if load is None:
            return state
        floor = _replicas(load + self._margin(), target)
        if state.floor_replicas is not None and floor <= state.floor_replicas:
            return state
        return replace(state, floor_replicas=floor)

    def _score(self, downstream: Sequence[float | None], last: int) -> None:
        # Rows with a value, for the fits: a backfill may start with a long gap.
        self._usable += sum(downstream[row] is not None for row in range(self._seen, last + 1))
        for row in range(max(self._seen, last - self.settings.error_rows), last + 1):
            made = self._pending.pop(row, None)
            value = downstream[row]
            if made is not None and value is not None and all(map(math.isfinite, made)):
                self._errors.append((value - made[0], abs(value - made[0]), abs(value - made[1])))
        self._seen = last + 1
        for stale in [r for r in self._pending if r <= last]:
            del self._pending[stale]

    def _refit(self, downstream: Sequence[float | None], upstreams: Sequence[UpstreamInput],
               last: int) -> None:
        settings = self.settings
        # While young the history doubles fast and a fit on few rows may pick a wrong lag:
        # refit whenever the rows with a value doubled, then every `refit_rows`.
        young = self._usable >= 2 * self._fitted_usable
        due = self.relation is None or young or last - self._fitted_at >= settings.refit_rows
        if not due or self._usable < settings.min_rows:
            return
        self._fitted_usable = self._usable
        start = max(0, last + 1 - settings.window_rows)
        window = [u.history[start: last + 1] for u in upstreams]
        self.relation = fit_relation(downstream[start: last + 1], window, settings.max_lag_rows)
        self._fitted_at = last

    def _margin(self) -> float:
        """What the floors add to the relation's reading: its realised errors' quantile (never
        below zero), so that a relation that reads low is allowed for as it shows itself."""
        signed = [error[0] for error in self._errors]
        return max(0.0, float(np.quantile(signed, self.settings.quantile)))

    def _judge(self, point: FloatArray, target: float) -> CouplingState:
        relation = self.relation
        forecast = tuple(float(p) for p in point)
        if len(self._errors) < self.settings.min_scored:
            reason = f"{len(self._errors)} of {self.settings.min_scored} rows scored so far"
            return CouplingState(False, reason, relation, None, forecast)
        _, coupled, own = (np.array(c) for c in zip(*self._errors, strict=True))
        relative = mae_ratio(float(coupled.mean()), float(own.mean()))
        if relation is not None and min(relation.ratios) <= 0:
            reason = ("learned ratio is not positive: more upstream load never means less here, "
                      "so the relation is not trusted")
            return CouplingState(False, reason, relation, relative, forecast)
        if relative >= 1.0:
            reason = f"coupled error {relative:.2f}x the own forecast's: not better"
            return CouplingState(False, reason, relation, relative, forecast)
        high = _highest(point + self._margin())
        floor = None if high is None else _replicas(high, target)
        reason = f"coupled error {relative:.2f}x the own forecast's"
        return CouplingState(True, reason, relation, relative, forecast, floor)


def find_cycle(edges: Mapping[str, Sequence[str]], start: str) -> tuple[str, ...] | None:
    """A cycle of couplings reachable from `start` (as the names along it, first repeated at the
    end), or None; `edges` maps a service to its upstreams."""
    path: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> tuple[str, ...] | None:
        if name in path:
            return (*path[path.index(name):], name)
        if name in done:
            return None
        path.append(name)
        for upstream in edges.get(name, ()):
            found = visit(upstream)
            if found is not None:
                return found
        path.pop()
        done.add(name)
        return None

    return visit(start)
