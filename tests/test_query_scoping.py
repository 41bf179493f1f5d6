"""A tenant's query as the operator sends it: placeholders filled in and escaped, unknown ones
refused, and (in namespace scope) every selector narrowed to the service's namespace, or the
query refused when that cannot be done safely."""

from __future__ import annotations

import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.adapters.prometheus_access import Source
from adaptive_operator.adapters.prometheus_http import Endpoint
from adaptive_operator.adapters.promql_scope import ScopeError, scoped
from adaptive_operator.api.healing import DEFAULT_METRICS
from adaptive_operator.domain.common.query_template import (
    TargetValues,
    TemplateError,
    pods_regex,
    render,
)

TEAM_A = TargetValues("team-a", "web", ("web-5d9c-abcde", "web-5d9c-fghij"))


def selectors_of(query: str) -> list[str]:
    found: list[str] = []

    def seen(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(str(node))

    promql_parser.walk(promql_parser.parse(query), pre_visit=seen)
    return found


@pytest.mark.parametrize("name", sorted(DEFAULT_METRICS))
def test_the_default_health_metrics_read_only_the_targets_pods(name: str) -> None:
    sent = render(DEFAULT_METRICS[name], TEAM_A)
    assert 'pod=~"web-5d9c-abcde|web-5d9c-fghij"' in sent
    selectors = selectors_of(sent)
    assert selectors and all('namespace="team-a"' in s and "pod=~" in s for s in selectors)


@pytest.mark.parametrize(("pods", "regex"), [
    pytest.param(["web-1"], "web-1", id="plain-name"),
    pytest.param(["a.b", "c"], "a\\.b|c", id="dot-escaped"),
    pytest.param(["x|.*"], "x\\|\\.\\*", id="alternation-and-star-escaped"),
])
def test_pod_names_become_an_exact_regex(pods: list[str], regex: str) -> None:
    assert pods_regex(pods) == regex


def test_a_value_cannot_end_the_string_it_goes_into() -> None:
    sent = render('up{namespace="{{namespace}}"}', TargetValues('a"} or up{x="', "web"))
    assert sent == 'up{namespace="a\\"} or up{x=\\""}'


@pytest.mark.parametrize(("query", "values", "message"), [
    pytest.param("up{x=\"{{nmespace}}\"}", TEAM_A, "unknown placeholder {{nmespace}}",
                 id="typo-is-refused"),
    pytest.param("up{pod=~\"{{pods}}\"}", TargetValues("a", "web"), "health metrics only",
                 id="pods-in-a-scaling-metric"),
    pytest.param("up{pod=~\"{{pods}}\"}", TargetValues("a", "web", ()), "no pods",
                 id="no-pods-never-an-empty-regex"),
])
def test_a_placeholder_that_cannot_be_filled_is_refused(query: str, values: TargetValues,
                                                         message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(query, values)


@pytest.mark.parametrize(("query", "expected"), [
    pytest.param("up", 'up{namespace="team-a"}', id="bare-name"),
    pytest.param('sum(rate(x{code=~"5.."}[5m])) / sum(rate(x[5m]))',
                 'sum(rate(x{code=~"5..",namespace="team-a"}[5m])) / '
                 'sum(rate(x{namespace="team-a"}[5m]))', id="every-selector-of-a-ratio"),
    pytest.param('x{namespace="team-b"}', 'x{namespace="team-b",namespace="team-a"}',
                 id="another-namespace-is-anded-to-nothing"),
    pytest.param("max_over_time(rate(x[1m])[5m:1m])",
                 'max_over_time(rate(x{namespace="team-a"}[1m])[5m:1m])', id="subquery"),
    pytest.param("rate(x[5m] offset 1h)", 'rate(x{namespace="team-a"}[5m] offset 1h)',
                 id="offset-kept"),
    pytest.param("vector(1)", "vector(1)", id="no-selector"),
])
def test_namespace_scope_narrows_every_selector(query: str, expected: str) -> None:
    assert scoped(query, "team-a") == expected


@pytest.mark.parametrize("query", [
    pytest.param("info(up)", id="info-reads-other-series"),
    pytest.param("sum(x", id="unparseable"),
    pytest.param('x{a="1" or b="2"}', id="or-matchers-not-printable-back"),
])
def test_what_cannot_be_scoped_is_refused(query: str) -> None:
    with pytest.raises(ScopeError):
        scoped(query, "team-a")


@given(st.text(max_size=40))
def test_any_label_value_stays_inside_the_scope(value: str) -> None:
    """Whatever a tenant writes in a matcher, the query sent reads team-a only, or is refused."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    try:
        sent = scoped(f'up{{job="{escaped}"}} or on() other{{x!="{escaped}"}}', "team-a")
    except ScopeError:
        return
    selectors: list[object] = []
    promql_parser.walk(promql_parser.parse(sent), pre_visit=lambda node: selectors.append(node)
                       if isinstance(node, promql_parser.VectorSelector) else None)
    assert selectors
    for selector in selectors:
        assert isinstance(selector, promql_parser.VectorSelector)
        assert any(m.name == "namespace" and m.value == "team-a"
                   for m in selector.matchers.matchers)


def test_a_source_reports_a_bad_query_as_a_condition_reason() -> None:
    scoped_source = Source(Endpoint("http://p"), TEAM_A, "namespace")
    assert scoped_source.query('up{pod=~"{{pods}}"}') == (
        'up{pod=~"web-5d9c-abcde|web-5d9c-fghij",namespace="team-a"}')
    with pytest.raises(MetricError) as caught:
        scoped_source.query("info(up)")
    assert caught.value.reason == "QueryNotScoped"
    with pytest.raises(MetricError) as caught:
        Source(Endpoint("http://p"), TEAM_A).query("{{podz}}")
    assert caught.value.reason == "InvalidQueryTemplate"
