"""Namespace scoping: a tenant's PromQL with `namespace="<ns>"` added to every selector.

The query is parsed (promql-parser, the Rust parser's bindings), the matcher is added to every
vector selector (and to each branch of an `or` of matchers: `{a="1" or b="2"}`), and the result
is printed and parsed again to check that every selector Prometheus will run carries it, so a
crafted label value cannot slip a selector past the check. Matchers are ANDed, so a tenant's own
`namespace=~".+"` only narrows it further. What cannot be parsed, or calls a function that reads
series the selectors do not name (`info`), is refused rather than run unscoped.
"""

from __future__ import annotations

from typing import Any

import promql_parser as promql

# Functions that look up series of their own beyond their arguments' selectors.
UNSCOPABLE_FUNCTIONS = frozenset({"info"})


class ScopeError(ValueError):
    """The query cannot be scoped safely; the message says why, for a condition."""


def scoped(query: str, namespace: str, label: str = "namespace") -> str:
    """The query reading only series labelled `label="<namespace>"`."""
    expr = _parse(query)
    forced = promql.Matcher(promql.MatchOp.Equal, label, namespace)

    def narrow(node: Any) -> Any:
        if isinstance(node, promql.Call) and node.func.name in UNSCOPABLE_FUNCTIONS:
            raise ScopeError(f"{node.func.name}() reads series its arguments do not name; "
                             "it cannot be scoped to the namespace")
        if isinstance(node, promql.VectorSelector):
            return _with_matcher(node, forced)
        return None

    try:
        text = str(promql.transform(expr, post_visit=narrow))
    except ValueError as err:  # a selector the parser cannot print back (ScopeError is one)
        raise ScopeError(str(err) if isinstance(err, ScopeError) else
                         f"a selector could not be scoped to the namespace: {err}") from err
    _verify(text, label, namespace)
    return text


def _parse(query: str) -> Any:
    try:
        return promql.parse(query)
    except ValueError as err:
        raise ScopeError(f"the query could not be parsed to scope it: {err}") from err


def _with_matcher(node: Any, forced: Any) -> Any:
    matchers = node.matchers
    branches = matchers.or_matchers
    if branches:
        kept = promql.Matchers([]).with_or_matchers([[*branch, forced] for branch in branches])
    else:
        kept = promql.Matchers([*matchers.matchers, forced])
    text = _selector_text(node.name, kept)
    replaced = promql.parse(text)
    if node.offset is not None or node.at is not None:
        # Keep the modifiers exactly: print the original and swap in the new braces.
        original = str(node)
        braces = original[original.index("{"):_closing_brace(original) + 1]
        replaced = promql.parse(original.replace(braces, text[text.index("{"):], 1))
    return replaced


def _selector_text(name: str | None, matchers: Any) -> str:
    return f"{name or ''}{matchers}"


def _closing_brace(text: str) -> int:
    """Index of the brace closing the selector's first `{`, outside quoted strings."""
    quote, escaped = "", False
    for index, char in enumerate(text):
        if quote:
            escaped = not escaped and char == "\\"
            quote = "" if (char == quote and not escaped) else quote
        elif char in "\"'`":
            quote = char
        elif char == "}":
            return index
    raise ScopeError("the query's selector could not be scoped")


def _verify(text: str, label: str, namespace: str) -> None:
    """Every selector of the query as Prometheus will read it carries the matcher."""
    missing: list[str] = []

    def check(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            matchers = node.matchers
            branches = matchers.or_matchers or [matchers.matchers]
            for branch in branches:
                if not any(m.name == label and m.op == promql.MatchOp.Equal
                           and m.value == namespace for m in branch):
                    missing.append(str(node))

    promql.walk(_parse(text), pre_visit=check)
    if missing:
        raise ScopeError(f"the selector {missing[0][:80]} could not be scoped to the namespace")
