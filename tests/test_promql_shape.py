"""Which queries may share one grouped query, and the grouped query they share."""

from __future__ import annotations

import pytest

from adaptive_operator.adapters.promql_shape import shape_of


@pytest.mark.parametrize(
    "query",
    [
        'sum(http_requests{service="a"})',
        "sum (http_requests{service='a'})",
        'sum(rate(http_requests_total{service="a", code="200"}[1m]))',
        'sum(abs(max_over_time(load{ns="x",service="a",}[5m])))',
        'sum({__name__="load", service="a"})',
    ],
)
def test_a_sum_over_one_selector_with_an_equality_matcher_groups(query: str) -> None:
    assert shape_of(query) is not None


@pytest.mark.parametrize(
    "query",
    [
        pytest.param('sum(a{s="x"}) / sum(b{s="x"})', id="two sums divided"),
        pytest.param('sum(a{s="x"} / b{s="x"})', id="binary operator inside"),
        pytest.param('sum by (le) (a{s="x"})', id="already grouped"),
        pytest.param('sum(a{s="x"}) by (le)', id="grouped after"),
        pytest.param('avg(a{s="x"})', id="not a sum"),
        pytest.param('sum(a{s="x"} offset 5m)', id="offset"),
        pytest.param('sum(label_replace(a{s="x"}, "t", "$1", "s", "(.*)"))', id="relabelling"),
        pytest.param('sum(a{s=~"x|y"})', id="only a regex matcher"),
        pytest.param('sum(a{s="x.*[y]"})', id="regex metacharacters in the value"),
        pytest.param('sum(a{s="x", s="y"})', id="the same label twice"),
        pytest.param("sum(a)", id="no matcher"),
        pytest.param('sum(a{s=""})', id="empty value"),
        pytest.param('sum(a{s="x\\"y"})', id="escaped quote"),
        pytest.param("sum(a{s='say \"hi\"'})", id="double quote in single quotes"),
        pytest.param('sum(a{s="x"} garbage)', id="trailing text"),
        pytest.param('sum(a{s="x" t="y"})', id="missing comma"),
        pytest.param('sum(rate(a{s="x"}[1m])) + sum(rate(', id="unbalanced"),
    ],
)
def test_anything_else_is_run_as_written(query: str) -> None:
    assert shape_of(query) is None


def test_queries_differing_only_in_label_values_share_a_key() -> None:
    a = shape_of('sum(rate(req{service="a", code="200"}[1m]))')
    b = shape_of("sum(rate( req{ service='b',code='200' } [1m] ))")
    other_code = shape_of('sum(rate(req{service="a", code="500"}[1m]))')
    other_window = shape_of('sum(rate(req{service="a", code="200"}[5m]))')
    assert a is not None and b is not None and other_code is not None
    assert other_window is not None
    assert a.key == b.key  # both labels vary: the grouped query asks by both
    assert a.values == ("a", "200") and b.values == ("b", "200")
    assert other_window.key != a.key


def test_the_grouped_query_sums_by_the_lifted_labels() -> None:
    shape = shape_of('sum(rate(req{job="api", service="a", code!="500"}[1m]))')
    assert shape is not None
    query = shape.grouped_query({("api", "a"), ("api", "b.v2")})
    assert query == (
        'sum by (job, service) (rate(req{code!="500", job=~"api", service=~"a|b\\\\.v2"}[1m]))'
    )


def test_a_nameless_selector_keeps_its_name_matcher() -> None:
    shape = shape_of('sum({__name__="load", service="a"})')
    assert shape is not None
    assert shape.grouped_query({("a",)}) == 'sum by (service) ({__name__="load", service=~"a"})'
