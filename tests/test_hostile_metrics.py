"""Hostile metric data: NaN, infinities, negative values, huge spikes, empty results and wrong
types. At the adapter, every answer is either read or refused with a message that says what was
ignored; in the domain, any float (nan and inf included) goes through without an exception and
never turns into an action on data that could not be read.

The adapter's parsing is fed Prometheus-shaped answers here (its HTTP boundary); what real
Prometheus returns for NaN, +Inf and negative samples is in e2e/test_bad_input.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_operator.adapters.prometheus import (
    MetricError,
    PrometheusError,
    ignored_text,
    on_grid,
    single_series,
    to_total,
    to_vector,
)
from adaptive_operator.domain.healing.anomaly import DetectorSettings
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.inputs import HealthHistory
from adaptive_operator.domain.scaling import algorithm as scaling
from adaptive_operator.domain.scaling.forecast_history import MetricHistory
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings
from adaptive_operator.domain.scaling.records import default_spec
from adaptive_operator.domain.sharding.rebalancing import shard_loads

QUERY = "sum(rate(requests_total[1m]))"
HOSTILE_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SPIKY_FLOATS = st.one_of(
    st.floats(min_value=0, max_value=100),
    st.just(1e308),
    st.just(-1e308),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.floats(allow_nan=True, allow_infinity=True),
)


def vector(*values: Any) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [1_700_000_000.0, value]} for value in values]


@pytest.mark.parametrize(
    ("result", "reason", "says"),
    [
        pytest.param(vector("NaN"), "InvalidValue", "'NaN': NaN; ignored", id="nan"),
        pytest.param(vector("+Inf"), "InvalidValue", "'+Inf': +Inf; ignored", id="plus-inf"),
        pytest.param(vector("-Inf"), "InvalidValue", "'-Inf': -Inf; ignored", id="minus-inf"),
        pytest.param(vector("-3"), "InvalidValue", "'-3': negative; ignored", id="negative"),
        pytest.param(
            vector("lots"), "InvalidValue", "'lots': non-numeric", id="non-numeric-string"
        ),
        pytest.param(vector(["1", "2"]), "InvalidValue", "non-numeric (list)", id="nested-value"),
        pytest.param(vector(None), "InvalidValue", "non-numeric (NoneType)", id="null-value"),
        pytest.param(vector(True), "InvalidValue", "non-numeric (bool)", id="boolean-value"),
        pytest.param(vector({"v": 1}), "InvalidValue", "non-numeric (dict)", id="object-value"),
        pytest.param(
            [{"metric": {}, "value": [1.0]}],
            "InvalidValue",
            "non-numeric (list)",
            id="sample-without-value",
        ),
        pytest.param([], "EmptyResult", "returned no series", id="empty-result"),
        pytest.param(vector("1", "2"), "TooManySeries", "returned 2 series", id="two-series"),
        pytest.param(
            [1_700_000_000.0, "3"],
            "NotAVector",
            "did not return an instant vector",
            id="scalar-result",
        ),
        pytest.param(
            [{"metric": {}, "values": [[1.0, "3"]]}],
            "NotAVector",
            "did not return an instant vector",
            id="range-vector",
        ),
        pytest.param("3", "NotAVector", "did not return an instant vector", id="string-result"),
        pytest.param(
            {"result": []}, "NotAVector", "did not return an instant vector", id="object-result"
        ),
    ],
)
def test_a_scaling_metric_refuses_what_it_cannot_read(result: Any, reason: str, says: str) -> None:
    with pytest.raises(MetricError) as caught:
        to_total(QUERY, result)
    assert caught.value.reason == reason
    assert QUERY in caught.value.message and says in caught.value.message


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("3.5", 3.5, id="decimal"),
        pytest.param("1e300", 1e300, id="huge-spike-is-a-number"),
        pytest.param(7, 7.0, id="int"),
    ],
)
def test_a_finite_non_negative_value_is_read(raw: Any, value: float) -> None:
    assert to_total(QUERY, vector(raw)).value == value


def test_a_range_answer_keeps_what_it_can_and_counts_what_it_ignored() -> None:
    samples = [
        [100, "1"],
        [102, "NaN"],
        [104, "+Inf"],
        [106, "-2"],
        [108, "x"],
        [110, "NaN"],
        ["late", "3"],
        [112],
        "junk",
        [114, "5"],
        [999, "6"],
    ]
    series = on_grid(samples, 100, 114, 2)
    assert series.values == [1.0, None, None, None, None, None, None, 5.0]
    assert series.ignored == {"NaN": 2, "+Inf": 1, "negative": 1, "non-numeric": 1, "malformed": 3}
    assert series.ignored_text() == (
        "ignored 3 malformed samples, 2 NaN samples, 1 +Inf "
        "sample, 1 negative sample, 1 non-numeric sample"
    )
    assert ignored_text({}) == ""


@pytest.mark.parametrize(
    "result",
    [
        pytest.param("oops", id="not-a-list"),
        pytest.param([1.0, "3"], id="scalar"),
        pytest.param([{"metric": {}, "values": "3"}], id="values-not-a-list"),
        pytest.param([], id="no-series"),
        pytest.param(
            [{"metric": {"a": "1"}, "values": []}, {"metric": {"a": "2"}, "values": []}],
            id="two-series",
        ),
    ],
)
def test_a_range_answer_of_the_wrong_shape_is_refused(result: Any) -> None:
    with pytest.raises(PrometheusError, match=r"query 'q'"):
        single_series(result, "q")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | HOSTILE_FLOATS
    | st.text(max_size=8)
    | st.sampled_from(["NaN", "+Inf", "-Inf", "-1", "1e309", "3"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["metric", "value", "values", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(JSON)
def test_any_json_answer_is_read_or_refused_with_a_metric_error(result: Any) -> None:
    try:
        sample = to_total("q", result)
    except MetricError as err:
        assert err.reason and "'q'" in err.message
    else:
        assert math.isfinite(sample.value) and sample.value >= 0
    try:
        to_vector("q", result)
    except MetricError as err:
        assert err.reason == "NotAVector"


@given(JSON)
def test_any_json_range_answer_is_placed_or_refused(result: Any) -> None:
    try:
        samples = single_series(result, "q")
    except PrometheusError:
        return
    series = on_grid(samples, 0, 20, 2)
    assert all(v is None or (math.isfinite(v) and v >= 0) for v in series.values)


@given(JSON)
def test_any_json_shard_vector_is_read_or_refused(result: Any) -> None:
    try:
        loads = shard_loads(to_vector("q", result), 3)
    except (MetricError, ValueError):
        return
    assert all(math.isfinite(v) and v >= 0 for v in loads)


# --- the domain ----------------------------------------------------------------------------


def unreadable(metrics: tuple[scaling.MetricReading, ...]) -> list[scaling.MetricReading]:
    """The readings that are missing, not finite or negative."""
    return [m for m in metrics if m.value is None or not math.isfinite(m.value) or m.value < 0]


@given(
    st.lists(
        st.tuples(SPIKY_FLOATS, st.floats(min_value=1e-300, max_value=1e300)),
        min_size=1,
        max_size=3,
    ),
    st.integers(min_value=0, max_value=50),
    st.integers(min_value=1, max_value=50),
)
def test_the_scaling_decision_takes_any_reading(
    readings: list[tuple[float, float]], current: int, max_replicas: int
) -> None:
    metrics = tuple(
        scaling.MetricReading(f"m{i}", value, target) for i, (value, target) in enumerate(readings)
    )
    spec = default_spec(min_replicas=1, max_replicas=max_replicas)
    snapshot = scaling.ScalingSnapshot(current, current, 0, metrics)
    decision = scaling.decide(spec, snapshot, scaling.ScalingHistory((), ()), 10_000.0)
    if current == 0:
        assert decision.desired_replicas == 0
    else:
        assert 1 <= decision.desired_replicas <= max(max_replicas, 1)
    if unreadable(metrics) and decision.desired_replicas < current <= max_replicas:
        pytest.fail(f"scaled down on unreadable data: {decision.message}")


@given(st.lists(SPIKY_FLOATS, max_size=60))
def test_the_forecast_history_keeps_only_numbers(values: list[float]) -> None:
    history = MetricHistory(0.0, 1.0, 32)
    for i, value in enumerate(values):
        history.record(float(i), value)
    kept = [history.value(row) for row in range(history.first_kept, history.total)]
    assert all(v is None or math.isfinite(v) for v in kept)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SPIKY_FLOATS, min_size=70, max_size=150))
def test_the_predictive_advisor_takes_any_history(values: list[float]) -> None:
    history = MetricHistory(0.0, 60.0, 200)
    for value in values:
        history.append(value)
    advisor = PredictiveAdvisor(PredictiveSettings(history_seconds=200 * 60.0))
    floor = advisor.advise(history.view(0), 60.0, 120.0, 10.0)
    assert floor is None or floor >= 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SPIKY_FLOATS, min_size=1, max_size=40), st.integers(min_value=0, max_value=2**16))
def test_the_anomaly_detector_takes_any_rows_that_reach_it(spikes: list[float], seed: int) -> None:
    settings_ = DetectorSettings(
        min_train_rows=30,
        baseline_rows=20,
        train_rows=200,
        cooldown_rows=5,
        record_rows=50,
        n_estimators=10,
    )
    history = HealthHistory(400)
    rows = [10.0 + (i * 7919 + seed) % 13 for i in range(150)] + spikes
    for value in rows:
        history.append({"latency": value, "cpu": 1.0 + value / 10})
    detector = AnomalyDetector(settings_, 0).fit(history.rows)
    verdict = detector.score(history.tail(60))
    assert 0.0 <= verdict.score <= 1.0
    assert all(math.isfinite(c.z) for c in verdict.contributions)
