"""Namespace patterns matched by the operator itself (kopf's syntax, on a cluster-wide watch)."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.common.namespaces import (
    WatchScope,
    in_scope,
    is_pattern,
    matches,
    watch_scope,
)


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    ("team-a", "team-*", True),
    ("other", "team-*", False),
    ("team-a", "team-?", True),
    ("team-ab", "team-?", False),
    ("myapp-test", "myapp-*, !*-pr-*, *pr-123", True),
    ("myapp-pr-123", "myapp-*, !*-pr-*, *pr-123", True),
    ("myapp-pr-456", "myapp-*, !*-pr-*, *pr-123", False),
    # Not selected by the first glob: a later inclusion does not bring it in.
    ("otherapp-pr-123", "myapp-*, !*-pr-*, *pr-123", False),
    # A leading exclusion implies a catch-all before it.
    ("otherapp-pr-123", "!*-pr-*, *pr-123", True),
    ("anything", "!*-pr-*", True),
    ("x-pr-1", "!*-pr-*", False),
    ("Team-a", "team-*", False),
])
def test_patterns_follow_kopf_syntax(name: str, pattern: str, expected: bool) -> None:
    assert matches(name, pattern) is expected


def test_any_value_selects_and_no_value_serves_all() -> None:
    assert in_scope("b-1", ["a-*", "b-*"])
    assert not in_scope("c-1", ["a-*", "b-*"])
    assert in_scope("c-1", [])
    assert not in_scope(None, ["a-*"])


def test_exact_names_are_not_patterns() -> None:
    assert not is_pattern("team-a")
    assert all(is_pattern(value) for value in ("team-*", "a?", "!x", "a,b", "[ab]"))


def test_patterns_watch_cluster_wide_and_filter_exact_names_watch_only_those() -> None:
    assert watch_scope([]) == WatchScope(clusterwide=True)
    assert watch_scope(["a", "b"]) == WatchScope(clusterwide=False, namespaces=("a", "b"))
    # One pattern among exact names: kopf watches everything and the handlers filter by all.
    assert watch_scope(["a", "team-*"]) == WatchScope(clusterwide=True, patterns=("a", "team-*"))
    assert in_scope("a", watch_scope(["a", "team-*"]).patterns)
