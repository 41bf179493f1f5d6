"""The autoscalers a user could pick instead, re-implemented from their public descriptions and run
under the replay's pod model (`domain.replay`: start-up delay, pods ready at a row's midpoint,
newest removed first, the operator's own HPA v2 decision code underneath).

Written here from the documentation only (no code taken from the projects):
- Predictive Horizontal Pod Autoscaler (jthomperoo/predictive-horizontal-pod-autoscaler, README and
  https://predictive-horizontal-pod-autoscaler.readthedocs.io): "calculating the number of replicas
  a resource should have, then storing these values and using statistical models against them";
  models Linear Regression (`lookAhead`, `historySize`) and Holt-Winters (statsmodels,
  `seasonalPeriods`, `storedSeasons`, additive trend and season); `decisionType: maximum` takes the
  highest of the models' predictions and the HPA's own calculation.
- Crane EHPA (gocrane/crane, site docs "Time Series Forecast Algorithm-DSP" and "Effective
  HorizontalPodAutoscaler"): the DSP predictor fills gaps linearly, clips to the P0.1..P99.9 band,
  looks for fixed periods (1 d, 7 d) whose FFT amplitude beats the P99 of 100 shuffled series and
  whose ACF is at a peak, then predicts the next cycle with `fft` (keep the strong low-frequency
  components, inverse FFT, times 1 + `marginFraction`) or `maxValue` (the highest value of the past
  cycles at each phase); EHPA hands the HPA the prediction over `predictionWindowSeconds` (3600 in
  its example) as a second metric next to the original, and the HPA takes the larger proposal.
- KEDA (keda.sh/docs, ScaledObject specification): the HPA on the same query, its value read every
  `pollingInterval` (30 s), scaled to zero after `cooldownPeriod` (300 s) with every trigger at or
  below `activationThreshold` (0), back to one replica once active (minReplicaCount 0).
- Static headroom: the reactive HPA with the target divided by 1 + h.
- Oracle: perfect foresight of the load, the fewest pods that serve it under the same start-up.

The peers' floors are given to `decide` the way a forecast floor is (the larger of it and the
metrics' proposal), which is how PHPA (`maximum`) and EHPA (the HPA's max over metrics) combine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from adaptive_operator.domain.scaling.algorithm import (
    ScalingHistory,
    ScalingSpec,
    decide,
    default_spec,
)
from adaptive_operator.domain.scaling.operating_point import ScheduledAdvisor
from adaptive_operator.domain.scaling.replay import (
    PodPool,
    ReplayConfig,
    ReplayResult,
    initial_replicas,
    replay,
    snapshot_at,
)

DAY = 86400.0
Values = Sequence[float | None]


def hpa(values: Values, config: ReplayConfig) -> ReplayResult:
    return replay(values, config)


def headroom(values: Values, config: ReplayConfig, h: float) -> ReplayResult:
    """Reactive HPA whose target is V / (1 + h): h above 0 keeps that much spare capacity."""
    return replay(values, replace(config, target_per_replica=config.target_per_replica / (1 + h)))


def _known(values: Values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def with_floors(values: Values, config: ReplayConfig, floors: Sequence[int | None]) -> ReplayResult:
    return replay(values, config, ScheduledAdvisor(floors))


# --- PHPA -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhpaSettings:
    linear_history: int | None = 12  # historySize of the linear regression (None: no such model)
    holt_winters: bool = False
    stored_seasons: int = 3
    refit_rows: int = 72  # a Holt-Winters refit every 6 h of 5-minute rows (PHPA refits per sync)


def hpa_evaluations(values: Values, target: float) -> np.ndarray:
    """The HPA's calculated replicas per row (PHPA stores these), carried over a missing row."""
    y = _known(values)
    out = np.ceil(y / target)
    for i in range(len(out)):
        if not np.isfinite(out[i]):
            out[i] = out[i - 1] if i else 1.0
    return out


def _linear(history: np.ndarray, ahead: int) -> float:
    t = np.arange(len(history), dtype=np.float64)
    slope, intercept = np.polyfit(t, history, 1)
    return float(intercept + slope * (len(history) - 1 + ahead))


def _holt_winters_path(history: np.ndarray, period: int, steps: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Heuristic initial values (one of PHPA's `initializationMethod`s): "estimated" would
        # optimise a day of seasonal starting values at every refit.
        model = ExponentialSmoothing(history, trend="add", seasonal="add", seasonal_periods=period,
                                     initialization_method="heuristic")
        return np.asarray(model.fit().forecast(steps), dtype=np.float64)


def phpa_floors(values: Values, config: ReplayConfig, settings: PhpaSettings) -> list[int | None]:
    step = config.interval_seconds
    ahead = max(1, math.ceil(config.startup_seconds / step))
    period = round(DAY / step)
    evals = hpa_evaluations(values, config.target_per_replica)
    floors: list[int | None] = []
    path, path_start = np.empty(0), 0
    for i in range(len(evals)):
        guesses = []
        n = settings.linear_history
        if n is not None and i + 1 >= n:
            guesses.append(_linear(evals[i + 1 - n : i + 1], ahead))
        if settings.holt_winters and i + 1 >= settings.stored_seasons * period:
            if i - path_start >= settings.refit_rows or not len(path):
                seasons = evals[i + 1 - settings.stored_seasons * period : i + 1]
                path = _holt_winters_path(seasons, period, settings.refit_rows + ahead + 1)
                path_start = i
            guesses.append(float(path[i - path_start + ahead - 1]))
        floors.append(math.ceil(max(guesses)) if guesses else None)
    return floors


# --- Crane EHPA (DSP) -------------------------------------------------------------------------


@dataclass(frozen=True)
class CraneSettings:
    estimator: str = "fft"  # or "maxValue"
    margin: float = 0.0  # marginFraction
    history_seconds: float = 3 * DAY  # historyLength (the EHPA example: 3d)
    window_seconds: float = 3600.0  # predictionWindowSeconds
    refit_seconds: float = 3600.0
    max_components: int = 20  # maxNumOfSpectrumItems
    high_frequency_hz: float = 1 / 3600.0  # highFrequencyThreshold: nothing shorter than an hour


def _prepared(y: np.ndarray) -> np.ndarray:
    """Gaps filled linearly, then values outside P0.1..P99.9 replaced by the previous value."""
    idx = np.arange(len(y))
    ok = np.isfinite(y)
    x = np.interp(idx, idx[ok], y[ok]) if ok.any() else np.zeros(len(y))
    lo, hi = np.percentile(x, [0.1, 99.9])
    for i in range(1, len(x)):
        if not lo <= x[i] <= hi:
            x[i] = x[i - 1]
    return x


def _is_period(x: np.ndarray, period: int, rng: np.random.Generator) -> bool:
    """Crane's test: the spectrum at the period beats the P99 of shuffled maxima, and the ACF
    is at a peak there (a rising line fitted before it, a falling one after)."""
    k = len(x) // period
    centred = x - x.mean()
    amplitude = np.abs(np.fft.rfft(centred))
    shuffled = [np.abs(np.fft.rfft(rng.permutation(centred)))[1:].max() for _ in range(100)]
    if amplitude[k] <= np.percentile(shuffled, 99):
        return False
    spectrum = np.fft.rfft(centred / (centred.std() or 1.0))
    acf = np.fft.irfft(np.abs(spectrum) ** 2, len(x)) / len(x)
    side = max(2, period // 10)
    left = np.polyfit(np.arange(side), acf[period - side : period], 1)[0]
    right = np.polyfit(np.arange(side), acf[period : period + side], 1)[0]
    return bool(left > 0 > right)


def _next_cycle(x: np.ndarray, period: int, settings: CraneSettings, step: float) -> np.ndarray:
    if settings.estimator == "maxValue":
        cycles = x[len(x) % period :].reshape(-1, period)
        highest: np.ndarray = cycles.max(axis=0) * (1 + settings.margin)
        return highest
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), d=step)
    keep = np.zeros(len(spectrum), dtype=bool)
    allowed = np.flatnonzero((freqs > 0) & (freqs <= settings.high_frequency_hz))
    strongest = allowed[np.argsort(np.abs(spectrum[allowed]))[::-1][: settings.max_components]]
    keep[0] = True
    keep[strongest] = True
    smooth = np.fft.irfft(np.where(keep, spectrum, 0), len(x))
    # The reconstruction repeats every len(x) rows, a whole number of periods: the next cycle
    # is its first period.
    return np.asarray(smooth[:period] * (1 + settings.margin), dtype=np.float64)


def crane_floors(values: Values, config: ReplayConfig, settings: CraneSettings) -> list[int | None]:
    step = config.interval_seconds
    y = _known(values)
    history = round(settings.history_seconds / step)
    window = max(1, round(settings.window_seconds / step))
    refit = max(1, round(settings.refit_seconds / step))
    rng = np.random.default_rng(0)
    floors: list[int | None] = []
    cycle: np.ndarray | None = None
    fitted_at = -refit
    for i in range(len(y)):
        if i + 1 >= history and i - fitted_at >= refit:
            cycle, fitted_at = _crane_fit(y[i + 1 - history : i + 1], step, settings, rng), i
        if cycle is None:
            floors.append(None)
            continue
        phase = (i - fitted_at + np.arange(window)) % len(cycle)
        floors.append(math.ceil(max(float(cycle[phase].max()), 0.0) / config.target_per_replica))
    return floors


def _crane_fit(
    y: np.ndarray, step: float, settings: CraneSettings, rng: np.random.Generator
) -> np.ndarray | None:
    """The predicted next cycle, aligned to start right after the last row; None without a
    period (the EHPA then runs on the original metric alone)."""
    x = _prepared(y)
    for days in (1, 7):
        period = round(days * DAY / step)
        if 2 * period > len(x):
            continue
        usable = x[len(x) % period :]
        if _is_period(usable, period, rng):
            return _next_cycle(usable, period, settings, step)
    return None


# --- KEDA -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KedaSettings:
    polling_seconds: float = 30.0
    cooldown_seconds: float = 300.0
    activation: float = 0.0


def polled(values: Values, step: float, polling_seconds: float) -> list[float | None]:
    """What the HPA sees through KEDA: the value read at the last poll."""
    every = max(1, round(polling_seconds / step))
    return [values[i - i % every] for i in range(len(values))]


def keda(values: Values, config: ReplayConfig, settings: KedaSettings) -> ReplayResult:
    """The replay loop with KEDA's activation around the HPA: zero replicas after the cooldown
    with the metric at or below the activation threshold, one again once it is above."""
    step = config.interval_seconds
    seen = polled(values, step, settings.polling_seconds)
    spec = default_spec(config.min_replicas, config.max_replicas)
    pool = PodPool(initial_replicas(seen, config))
    history, idle_since = ScalingHistory(), None
    desired: list[int] = []
    serving: list[int] = []
    for i, value in enumerate(seen):
        serving.append(pool.ready_at(i * step + step / 2))
        now = (i + 1) * step
        active = value is None or value > settings.activation
        idle_since = None if active else (now if idle_since is None else idle_since)
        target = _keda_replicas(spec, pool, history, now, value, config)
        replicas, history = target
        if idle_since is not None and now - idle_since >= settings.cooldown_seconds:
            replicas = 0
        elif len(pool) == 0:
            replicas = 1 if active else 0
        pool.resize(replicas, now, config.startup_seconds)
        desired.append(replicas)
    return ReplayResult(tuple(desired), tuple(serving), ())


def _keda_replicas(spec: ScalingSpec, pool: PodPool, history: ScalingHistory, now: float,
                   value: float | None, config: ReplayConfig) -> tuple[int, ScalingHistory]:
    """The HPA's decision (the HPA leaves a workload at zero alone)."""
    if len(pool) == 0:
        return 0, history
    decision = decide(spec, snapshot_at(pool, now, value, config), history, now)
    return decision.desired_replicas, decision.history


# --- oracle -----------------------------------------------------------------------------------


def oracle(values: Values, config: ReplayConfig) -> ReplayResult:
    """Perfect foresight under the same pod model: at the end of row i, the pods needed by every
    row whose midpoint falls before a pod ordered now could be ready for the row after; a pod
    no row needs any more is removed at once."""
    step, start = config.interval_seconds, config.startup_seconds
    y = _known(values)
    need = np.where(np.isfinite(y), np.ceil(np.nan_to_num(y) / config.target_per_replica), 0)
    need = np.clip(need, config.min_replicas, config.max_replicas).astype(int)
    pool = PodPool(initial_replicas(values, config))
    desired: list[int] = []
    serving: list[int] = []
    reach = math.floor((start + step / 2) / step) + 1  # rows a pod ordered now still misses
    for i in range(len(y)):
        serving.append(pool.ready_at(i * step + step / 2))
        upcoming = need[i + 1 : i + 1 + reach]
        replicas = int(upcoming.max()) if len(upcoming) else int(need[i])
        pool.resize(replicas, (i + 1) * step, start)
        desired.append(replicas)
    return ReplayResult(tuple(desired), tuple(serving), ())


Scaler = Callable[[Values, ReplayConfig], ReplayResult]
