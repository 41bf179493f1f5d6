"""The live detector's shortcuts give the full computation's numbers: the newest row's
features (whole, and from what the previous call left), the forest's scores, and the verdicts
of `score_latest` against `score` and against the live path as it was before it remembered
features and skipped quiet verdicts, over long runs of syncs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.anomaly import (
    AnomalyVerdict,
    Contribution,
    DetectorSettings,
    Series,
    beyond_training,
    deviates,
    feature_matrix,
    raw_scores,
    repeats_season,
    smoothed,
)
from adaptive_operator.domain.healing.anomaly_flags import flag_incidents
from adaptive_operator.domain.healing.anomaly_latest import LatestFeatures, latest_features
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector, _ScoredRows, by_deviation
from adaptive_operator.domain.healing.forest_scoring import (
    FastForest,
    average_path_length,
    average_path_lengths,
)
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec

NAN = float("nan")


def series(rows: int, seed: int = 0) -> dict[str, list[float]]:
    """Two noisy metrics with a step, a spike and a flat stretch."""
    rng = np.random.default_rng(seed)
    errors = 0.01 + rng.normal(0, 0.002, rows)
    latency = 0.1 + rng.normal(0, 0.01, rows)
    errors[rows // 2 :] += 0.05
    latency[rows // 3] = 5.0
    latency[rows // 4 : rows // 4 + 30] = 0.1
    return {"errors": list(errors), "latency": list(latency)}


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 150, 2103, 3000])
def test_the_newest_rows_features_equal_the_full_computation(rows: int) -> None:
    settings = DetectorSettings(baseline_rows=1000)
    window = series(rows)
    full = feature_matrix(window, settings)[-1:]
    latest, levels = latest_features(window, settings.baseline_rows, settings.short_rows)
    np.testing.assert_allclose(latest, full, rtol=1e-9, atol=1e-12)
    assert [name for name, *_ in levels] == ["errors", "latency"]


@pytest.mark.parametrize("gaps", [[-1], [-2], [-3, -5], [-1, -2, -3, -4, -5], [-6, -1, -12]])
def test_missing_values_in_the_newest_rows_give_the_full_computations_features(
        gaps: list[int]) -> None:
    """A metric a query could not compute (an error ratio with no requests: NaN) among the
    newest rows: the live path skips it in the short and long means and the short spread, as
    the batch's rolling windows do, instead of losing the whole feature."""
    settings = DetectorSettings(baseline_rows=50)
    window = series(200, seed=3)
    for row in gaps:
        window["errors"][row] = NAN
    full = feature_matrix(window, settings)[-1:]
    latest, _ = latest_features(window, settings.baseline_rows, settings.short_rows)
    np.testing.assert_allclose(latest, full, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("count", [1, 2, 500])
def test_the_fast_forest_scores_as_scikit_learn(count: int) -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(600, 8))
    train[::7] *= 5
    forest = IsolationForest(n_estimators=30, max_samples=256, random_state=0).fit(train)
    fast = FastForest.of(forest)
    # Each tree's nodes once, one after the other, three numbers a node.
    assert len(fast.value) == sum(tree.tree_.node_count for tree in forest.estimators_)
    assert len(fast.first_child) == len(fast.feature) == len(fast.value)
    rows = rng.normal(size=(count, 8)) * 3
    np.testing.assert_allclose(fast.scores(rows), -forest.score_samples(rows), rtol=1e-12)


def test_the_fast_forest_keeps_each_nodes_children_side_by_side() -> None:
    """Level order: an inner node's right child follows its left one; a leaf points at
    itself and reads the -inf column, so a row that reached it stays there."""
    forest = IsolationForest(n_estimators=5, max_samples=64, random_state=2)
    fast = FastForest.of(forest.fit(np.random.default_rng(2).normal(size=(200, 3))))
    nodes = np.arange(len(fast.value))
    leaf = fast.feature == fast.features
    assert (fast.first_child[leaf] == nodes[leaf]).all()
    inner = nodes[~leaf]
    assert (fast.first_child[inner] > inner).all()
    children = np.concatenate([fast.first_child[inner], fast.first_child[inner] + 1])
    assert sorted(children.tolist() + fast.roots.tolist()) == nodes.tolist()


def test_a_forest_of_single_leaves_scores_as_scikit_learn() -> None:
    """Identical training rows: every tree is one leaf (depth 0)."""
    forest = IsolationForest(n_estimators=4, random_state=0).fit(np.ones((50, 2)))
    fast = FastForest.of(forest)
    rows = np.array([[1.0, 1.0], [7.0, -3.0]])
    assert fast.depth == 0
    np.testing.assert_allclose(fast.scores(rows), -forest.score_samples(rows), rtol=1e-12)


def test_the_average_path_length_of_tiny_samples() -> None:
    assert (average_path_length(1), average_path_length(2)) == (0.0, 1.0)
    assert average_path_length(256) == pytest.approx(10.2448, abs=1e-3)


def test_the_path_lengths_of_many_counts_at_once() -> None:
    # c(3) = 2 (ln 2 + Euler's gamma) - 4 / 3.
    found = average_path_lengths(np.array([0, 1, 2, 3, 256]))
    np.testing.assert_allclose(found, [0.0, 0.0, 1.0, 1.2075, 10.2448], atol=1e-3)


def test_a_forest_that_subsamples_features_is_refused() -> None:
    forest = IsolationForest(n_estimators=3, max_features=0.5, random_state=0)
    forest.fit(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(ValueError, match="every feature"):
        FastForest.of(forest)


def test_score_latest_gives_the_verdicts_of_score() -> None:
    """Rows scored one by one (refits included) agree with the whole window scored each time."""
    settings = DetectorSettings(
        baseline_rows=60,
        record_rows=60,
        cooldown_rows=10,
        persistence_k=2,
        persistence_n=3,
        warm_up_rows=10,
        min_train_rows=40,
        beyond_training=True,
        refit_every=50,
    )
    history = series(300, seed=3)
    window_rows = (
        settings.baseline_rows
        + settings.persistence_n
        + settings.cooldown_rows
        + (settings.record_rows)
    )
    full, live = AnomalyDetector(settings, 0), AnomalyDetector(settings, 0)
    flags_full, flags_live = [], []
    for end in range(60, 300):
        past = {k: v[:end] for k, v in history.items()}
        if end % settings.refit_every == 10:
            full.fit(past)
            live.fit(past)
        if not full.fitted:
            continue
        window = {k: v[-window_rows:] for k, v in past.items()}
        a, b = full.score(window), live.score_latest(window)
        assert_same_verdict(a, b)
        flags_full.append(a.is_anomaly)
        flags_live.append(b.is_anomaly)
    assert any(flags_full)  # the scenario has anomalies to agree on
    assert flags_live == flags_full


def test_score_latest_needs_a_fitted_detector() -> None:
    with pytest.raises(RuntimeError):
        AnomalyDetector().score_latest(series(10))


def assert_same_verdict(a: AnomalyVerdict, b: AnomalyVerdict) -> None:
    """The live path's verdict equals the full path's: score, and what it names and by how much."""
    assert b.score == pytest.approx(a.score, abs=1e-9)
    assert [c.metric for c in b.contributions] == [c.metric for c in a.contributions]
    assert [x for c in b.contributions for x in (c.baseline, c.z)] == pytest.approx(
        [x for c in a.contributions for x in (c.baseline, c.z)]
    )


# --- the newest row's features from what the previous call left ------------------------------

@st.composite
def window_runs(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int]], list[list[float]]]:
    """A baseline, a period for the second metric, windows (start, end) that mostly grow or
    slide by one row and sometimes jump, and two metrics' values with ties and gaps."""
    rows = draw(st.integers(2, 7))
    period = draw(st.sampled_from([0, 0, 3, 11]))  # 11: longer than a short window's reach
    size = draw(st.integers(5, 70))
    pick = st.sampled_from([0.0, 1.0, 1.0, 2.0, 2.5, -3.0, 100.0, NAN]) | st.floats(-5, 5)
    metrics = [draw(st.lists(pick, min_size=size, max_size=size)) for _ in range(2)]
    start, end, windows = 0, 1, []
    for move in draw(st.lists(st.sampled_from("ggggsssj"), min_size=1, max_size=60)):
        if move == "j":
            end = draw(st.integers(1, size))
            start = draw(st.integers(0, end - 1))
        else:
            end, start = end + 1, start + (move == "s")
        if end > size:
            break
        windows.append((start, end))
    return rows, period, windows, metrics


@given(window_runs())
def test_features_from_the_previous_call_equal_the_whole_computation(
    run: tuple[int, int, list[tuple[int, int]], list[list[float]]],
) -> None:
    """Identical numbers, not close ones: ties (even counts take the mean of the middle two),
    missing values, a seasonal period, windows sliding under 2 x baseline_rows + 1 rows (the
    baselines of their oldest rows change) and windows that jump (computed afresh)."""
    rows, period, windows, metrics = run
    periods = {"a": 0, "b": period}
    latest = LatestFeatures(rows, short_rows=3)
    for start, end in windows:
        window = {name: values[start:end] for name, values in zip("ab", metrics, strict=True)}
        if not latest.continues(window):
            latest.restart(window)
            continue
        features, levels = latest.advance(window, periods)
        expected, expected_levels = latest_features(window, rows, 3, periods)
        np.testing.assert_array_equal(features, expected)
        np.testing.assert_array_equal(np.array([lv[1:] for lv in levels]),
                                      np.array([lv[1:] for lv in expected_levels]))


def test_a_window_continues_the_previous_one_only_by_one_new_row() -> None:
    latest = LatestFeatures(3, 2)
    latest.restart({"a": [1.0, 2.0, 3.0]})
    assert latest.continues({"a": [1.0, 2.0, 3.0, 4.0]})  # grown
    assert latest.continues({"a": [2.0, 3.0, 4.0]})  # slid
    assert not latest.continues({"a": [1.0, 2.0, 3.0]})  # the same rows
    assert not latest.continues({"a": [3.0, 4.0]})  # two rows dropped
    assert not latest.continues({"a": [1.0, 2.5, 3.0, 4.0]})  # an old row changed
    assert not latest.continues({"b": [1.0, 2.0, 3.0, 4.0]})  # other metrics
    latest.restart({"a": []})
    assert not latest.continues({"a": []})


# --- a quiet tail: no verdict to compute -------------------------------------------------------


@st.composite
def tails(draw: st.DrawFn) -> tuple[DetectorSettings, float, int, list[float], list[bool],
                                     list[bool]]:
    """An operating point, a threshold, a season, and a tail's scores, moves and rows beyond
    training (scores on the threshold included)."""
    n = draw(st.integers(1, 4))
    settings = DetectorSettings(
        persistence_n=n, persistence_k=draw(st.integers(1, n)),
        cooldown_rows=draw(st.integers(0, 5)), record_rows=draw(st.integers(0, 8)),
        season_slack_rows=1, season_repeats=draw(st.integers(0, 2)),
        smooth_rows=draw(st.integers(1, 4)))
    size = draw(st.integers(1, 30))
    scores = draw(st.lists(st.sampled_from([0.3, 0.5, 0.6, 0.7]), min_size=size, max_size=size))
    flags = st.lists(st.booleans(), min_size=size, max_size=size)
    return (settings, draw(st.sampled_from([0.5, 0.6])), draw(st.sampled_from([0, 3, 5])),
            scores, draw(flags), draw(flags))


@given(tails())
def test_a_quiet_tail_is_never_flagged(
    tail: tuple[DetectorSettings, float, int, list[float], list[bool], list[bool]],
) -> None:
    """When none of the last persistence_n rows can exceed, the whole verdict would not flag
    the newest row: the live path's shortcut changes no verdict."""
    settings, threshold, season, scores, moved, beyond = tail
    rows = _ScoredRows.of(len(scores), scores, moved, beyond)
    values = smoothed(np.asarray(scores), settings.smooth_rows)
    regular = repeats_season(values, season, settings)
    gate = (values >= threshold) & np.asarray(moved) & ~regular
    flags = flag_incidents(values, gate, np.asarray(beyond) & ~regular, settings,
                           len(scores) + 1)
    if rows.quiet(settings.persistence_n, threshold, settings.smooth_rows):
        assert not flags[-1]


def test_a_tail_is_quiet_without_a_row_that_can_exceed_among_the_last_n() -> None:
    def quiet(scores: list[float], moved: list[bool], beyond: list[bool]) -> bool:
        return _ScoredRows.of(5, scores, moved, beyond).quiet(3, threshold=0.5)

    calm = [0.4, 0.4, 0.4, 0.4]
    assert quiet(calm, [True] * 4, [False] * 4)
    assert not quiet([0.4, 0.5, 0.4, 0.4], [True] * 4, [False] * 4)  # at the threshold
    assert quiet([0.4, 0.5, 0.4, 0.4], [True, False, True, True], [False] * 4)  # not moving
    assert quiet([0.9, 0.4, 0.4, 0.4], [True] * 4, [True, False, False, False])  # too old
    assert not quiet(calm, [False] * 4, [False, True, False, False])  # beyond training
    assert quiet([], [], [])


# --- the live detector over long runs of syncs -----------------------------------------------


class LiveAsItWas:
    """`score_latest` before it remembered features and skipped quiet verdicts: the newest
    row's features from the whole window (`latest_features`) and, every call, the season, the
    record and the flags over the whole remembered tail; a window that is not the previous
    one plus a row is scored whole."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.detector = AnomalyDetector(settings, 0)
        self.columns: list[list[float]] | None = None
        self.previous: dict[str, list[float]] = {}

    def fit(self, history: Series) -> None:
        self.detector.fit(history)
        self.columns = None

    def score_latest(self, window: dict[str, list[float]]) -> AnomalyVerdict:
        d, s = self.detector, self.detector.settings
        model = d._model
        assert model is not None
        if self.columns is None or not _one_row_more(self.previous, window):
            verdict = d.score(window)
            assert d._rows is not None
            self.columns = [list(d._rows.scores), list(d._rows.deviates), list(d._rows.beyond)]
        else:
            limit = s.persistence_n + s.cooldown_rows + s.record_rows
            features, levels = latest_features(window, s.baseline_rows, s.short_rows,
                                               model.periods)
            new = [raw_scores(model, features)[0], deviates(features, s)[0],
                   beyond_training(model, features, s)[0]]
            self.columns = [[*column, value][-limit:]
                            for column, value in zip(self.columns, new, strict=True)]
            scores = smoothed(np.asarray(self.columns[0], dtype=float), s.smooth_rows)
            regular = repeats_season(scores, model.season, s)
            moved, beyond = (np.asarray(column, dtype=bool) for column in self.columns[1:])
            gate = (scores >= model.threshold) & moved
            flags = flag_incidents(scores, gate & ~regular, beyond & ~regular, s, limit + 1,
                                   ~moved)
            verdict = AnomalyVerdict(float(scores[-1]), bool(flags[-1]),
                                     by_deviation([Contribution(*level) for level in levels]))
        self.previous = {name: list(values) for name, values in window.items()}
        return verdict


def _one_row_more(previous: dict[str, list[float]], window: dict[str, list[float]]) -> bool:
    return previous.keys() == window.keys() and all(
        window[k][:-1] in (previous[k], previous[k][1:]) for k in window)


def operator_like(window_rows: int = 0) -> DetectorSettings:
    """The operator's settings (`detector_settings_from_spec`) at a tenth of the rows."""
    live = detector_settings_from_spec(HealingSpec())
    return replace(live, baseline_rows=40, train_rows=200, min_train_rows=40, refit_every=50,
                   record_rows=60, cooldown_rows=10, season_slack_rows=3, warm_up_rows=10)


def incidents(rows: int, seed: int, flat: bool = True) -> dict[str, list[float]]:
    """A metric with a 16-row cycle (a nightly job) and one with noise, both with incidents:
    spikes, a step that stays, and (`flat`) a flat stretch in each."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    load = 10.0 + 4.0 * (t % 16 < 3) + rng.normal(0, 0.3, rows)
    errors = 0.01 + rng.normal(0, 0.002, rows)
    for at in rng.choice(np.arange(150, rows - 20), size=6, replace=False):
        errors[at : at + rng.integers(1, 4)] += rng.choice([0.05, 0.2, -0.02])
        load[at + 5] *= rng.choice([0.2, 3.0])
    errors[rows // 2 :] += 0.03
    if flat:
        errors[rows // 3 : rows // 3 + 25] = 0.01
        load[rows // 4 : rows // 4 + 12] = load[rows // 4]
    return {"load": list(load), "errors": list(errors)}


def refit_due(settings: DetectorSettings, fitted: bool, since_fit: int, end: int) -> bool:
    """A first fit once there are enough rows, then one every `refit_every` rows."""
    return (not fitted or since_fit >= settings.refit_every) and end >= settings.rows_to_fit


def disturbed(window: dict[str, list[float]], odd: float) -> dict[str, list[float]]:
    """The window, or now and then (`odd` below 0.02) one that is not the previous window plus
    a row: a row skipped, or an old value changed."""
    if odd < 0.01:
        return {k: v[:-2] + v[-1:] for k, v in window.items()}
    if odd < 0.02:
        return {k: [v[0] + 1.0, *v[1:]] for k, v in window.items()}
    return window


def syncs(settings: DetectorSettings, history: dict[str, list[float]], window_rows: int,
          seed: int) -> list[tuple[dict[str, list[float]] | None, dict[str, list[float]]]]:
    """What the operator does: each sync, a new row (`history` rows refitting every
    `refit_every` rows, as `domain.healing.watch.score`), then the window's verdict; now and then
    a window that is not the previous one plus a row (a row skipped, the same window again, a
    changed old value). Each item: the history to fit on first (or None), the window."""
    rng = np.random.default_rng(seed)
    calls: list[tuple[dict[str, list[float]] | None, dict[str, list[float]]]] = []
    since_fit, fitted = 0, False
    for end in range(20, len(history["load"])):
        since_fit += 1
        due = refit_due(settings, fitted, since_fit, end)
        past = {k: v[:end] for k, v in history.items()}
        odd = rng.random()
        window = disturbed({k: v[-window_rows:] for k, v in past.items()}, odd)
        if due:
            since_fit, fitted = 0, True
        if fitted:
            calls.append((past if due else None, window))
            if odd > 0.99:
                calls.append((None, window))
    return calls


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_latest_gives_the_verdicts_of_the_live_path_as_it_was(seed: int) -> None:
    """Identical verdicts over ~900 syncs of the operator's settings (scaled down) and its
    window (baseline + persistence + cool-down + record rows): warm-up rows while the history
    grows, refits, incidents flagged and cooled down, a season, and odd windows."""
    settings = operator_like()
    window_rows = (settings.baseline_rows + settings.persistence_n + settings.cooldown_rows
                   + settings.record_rows)
    live, before = AnomalyDetector(settings, 0), LiveAsItWas(settings)
    seasons, flags = set(), []
    for history, window in syncs(settings, incidents(900, seed), window_rows, seed):
        if history is not None:
            live.fit(history)
            before.fit(history)
            assert before.detector._model is not None
            seasons.add(before.detector._model.season)
        got, expected = live.score_latest(window), before.score_latest(window)
        assert got == expected
        flags.append(got.is_anomaly)
    assert any(seasons) and sum(flags) >= 2  # a season found, incidents to agree on


@pytest.mark.parametrize("seed", [3, 4])
def test_score_latest_gives_the_verdicts_of_score_over_long_runs(seed: int) -> None:
    """With a window long enough that the whole path scores every row of the tail as the
    live path did when it was the newest (2 x baseline + tail rows), the verdicts agree.
    (Not over a stretch of identical values: there pandas' rolling mean of the deviations
    keeps a residue of the values that left its window where the live path's mean is 0, and
    the volatility feature, log of a ratio of tiny numbers, differs in the 6th digit.)"""
    settings = operator_like()
    window_rows = (2 * settings.baseline_rows + settings.persistence_n
                   + settings.cooldown_rows + settings.record_rows)
    full, live = AnomalyDetector(settings, 0), AnomalyDetector(settings, 0)
    flags_full, flags_live = [], []
    for history, window in syncs(settings, incidents(450, seed, flat=False), window_rows, seed):
        if history is not None:
            full.fit(history)
            live.fit(history)
        a, b = full.score(window), live.score_latest(window)
        assert_same_verdict(a, b)
        flags_full.append(a.is_anomaly)
        flags_live.append(b.is_anomaly)
    assert any(flags_full)
    assert flags_live == flags_full
