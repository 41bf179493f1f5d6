"""Reading a per-shard instant vector: what Prometheus answers is checked before it is used."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import MetricError, to_vector

SERIES = [{"metric": {"shard": "0"}, "value": [1.0, "3"]},
          {"metric": {"shard": "1"}, "value": [1.0, "1"]}]


@pytest.mark.parametrize("result", [
    pytest.param(SERIES, id="one-series-per-shard"),
    pytest.param([], id="nothing-matched-is-an-empty-vector"),
])
def test_instant_vectors_pass_through(result: list[Any]) -> None:
    assert to_vector("load", result) == result


@pytest.mark.parametrize("result", [
    pytest.param([1.0, "3"], id="scalar-result"),
    pytest.param([{"metric": {"shard": "0"}, "values": [[1.0, "3"]]}], id="range-vector"),
    pytest.param([{"value": [1.0, "3"]}], id="series-without-labels-key"),
])
def test_other_result_types_are_refused_with_the_query(result: list[Any]) -> None:
    with pytest.raises(MetricError) as caught:
        to_vector("sum(load)", result)
    assert caught.value.reason == "NotAVector"
    assert "sum(load)" in caught.value.message
