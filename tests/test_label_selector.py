"""Label selectors as the API server matches them: every requirement must hold."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.domain.common.label_selector import matches, to_text

WEB = {"app": "web", "tier": "front"}


@pytest.mark.parametrize(("selector", "labels", "selected"), [
    pytest.param({"matchLabels": {"app": "web"}}, WEB, True, id="match-labels-subset"),
    pytest.param({"matchLabels": {"app": "api"}}, WEB, False, id="match-labels-other-value"),
    pytest.param({"matchLabels": {"app": "web", "x": "y"}}, WEB, False, id="one-label-missing"),
    pytest.param({}, WEB, True, id="empty-selector-selects-everything"),
    pytest.param(None, WEB, False, id="no-selector-selects-nothing"),
    pytest.param({"matchLabels": {"app": "web"}}, None, False, id="object-without-labels"),
    pytest.param({"matchExpressions": [{"key": "tier", "operator": "In",
                                        "values": ["front", "back"]}]}, WEB, True, id="in"),
    pytest.param({"matchExpressions": [{"key": "tier", "operator": "In",
                                        "values": ["back"]}]}, WEB, False, id="in-other"),
    pytest.param({"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                        "values": ["back"]}]}, WEB, True, id="not-in"),
    pytest.param({"matchExpressions": [{"key": "zone", "operator": "NotIn",
                                        "values": ["a"]}]}, WEB, True, id="not-in-absent-key"),
    pytest.param({"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                        "values": ["front"]}]}, WEB, False, id="not-in-hit"),
    pytest.param({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, WEB, True,
                 id="exists"),
    pytest.param({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, WEB, False,
                 id="exists-absent"),
    pytest.param({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, WEB, True,
                 id="does-not-exist"),
    pytest.param({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, WEB, False,
                 id="does-not-exist-present"),
    pytest.param({"matchExpressions": [{"key": "app", "operator": "Near"}]}, WEB, False,
                 id="unknown-operator-selects-nothing"),
    pytest.param({"matchLabels": {"app": "web"},
                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]},
                 WEB, False, id="labels-and-expressions-both-hold"),
])
def test_selector_matches_as_the_api_server_does(selector: Any, labels: Any,
                                                  selected: bool) -> None:
    assert matches(selector, labels) is selected


def test_selector_text_is_the_query_parameter_form() -> None:
    selector = {"matchLabels": {"tier": "front", "app": "web"}, "matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["b", "a"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "team", "operator": "Exists"},
        {"key": "odd", "operator": "Near"}]}
    assert to_text(selector) == ("app=web,tier=front,zone in (a,b),env notin (dev),!canary,"
                                 "team")
