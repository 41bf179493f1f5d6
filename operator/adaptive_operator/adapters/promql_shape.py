"""Which instant queries can share one grouped query, and that grouped query.

Many services ask the same shape of question with different label values:
`sum(rate(http_requests_total{service="a"}[1m]))`, `... {service="b"} ...`. When a query is
`sum(<inner>)` and <inner> is one selector (optionally with a range) wrapped only in per-series
functions that keep every label but the name (rate, *_over_time, abs, ...), the values of its
equality matchers can be lifted out:

    sum by (service) (rate(http_requests_total{service=~"a|b"}[1m]))

Its series labelled service="a" sums exactly the series the first query sums (those with
service="a" and the other matchers), so it gives the same number; a value with no series is
missing from the answer, as the single query's answer is empty. Anything else (a binary
operator, `by`/`without`, `offset`, a matcher value with regex metacharacters, ...) is not
grouped: it is run as written.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

# Per-series functions of one argument whose output keeps the input's labels (minus __name__).
FUNCTIONS = frozenset(
    {
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "resets",
        "changes",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "present_over_time",
        "abs",
        "ceil",
        "floor",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
    }
)
_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_SELECTOR = re.compile(
    rf"\s*(?P<name>{_NAME})?\s*\{{(?P<matchers>[^{{}}]*)\}}\s*"
    r"(?:\[\s*(?P<range>[0-9]+[smhdwy](?:[0-9]+[smhdwy])*)\s*\])?\s*"
)
_CALL = re.compile(rf"\s*(?P<func>{_NAME})\s*\((?P<arg>.*)\)\s*", re.DOTALL)
_MATCHER = re.compile(
    r"\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r"(?P<text>\"(?P<dq>[^\"\\]*)\"|'(?P<sq>[^'\\]*)')\s*"
)
# Values used as literal alternatives of a regex: `.` is the one metacharacter allowed (escaped).
_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]+")


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def text(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Shape:
    """A groupable query: the same `key` for queries that differ only in `values`."""

    functions: tuple[str, ...]  # outermost first
    name: str
    fixed: tuple[Matcher, ...]  # matchers kept as written
    labels: tuple[str, ...]  # the grouped equality matchers' labels, in the query's order
    values: tuple[str, ...]  # this query's values of them
    range: str | None

    @property
    def key(self) -> tuple[object, ...]:
        return (self.functions, self.name, self.fixed, self.labels, self.range)

    def grouped_query(self, members: Collection[tuple[str, ...]]) -> str:
        """One query whose series labelled with a member's values answer that member."""
        alternatives = [sorted({member[i] for member in members}) for i in range(len(self.labels))]
        grouped = [
            Matcher(label, "=~", "|".join(_escape(v) for v in values))
            for label, values in zip(self.labels, alternatives, strict=True)
        ]
        matchers = ", ".join(m.text() for m in (*self.fixed, *grouped))
        inner = f"{self.name}{{{matchers}}}" + (f"[{self.range}]" if self.range else "")
        for function in reversed(self.functions):
            inner = f"{function}({inner})"
        return f"sum by ({', '.join(self.labels)}) ({inner})"


def _escape(value: str) -> str:
    # A backslash before the dot, itself escaped inside the PromQL string literal.
    return value.replace(".", "\\\\.")


def _balanced(text: str) -> bool:
    """Parentheses balanced outside quoted strings (so `f(a) + g(b)` is not one call)."""
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`":
            quote = char
        elif char in "()":
            depth += 1 if char == "(" else -1
            if depth < 0:
                return False
    return depth == 0 and not quote


def _matchers(text: str) -> list[Matcher] | None:
    found: list[Matcher] = []
    position, text = 0, text.strip().rstrip(",")
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            return None
        value = match["dq"] if match["dq"] is not None else match["sq"]
        if '"' in value:
            return None  # rewritten in double quotes below: keep it simple, do not group
        found.append(Matcher(match["label"], match["op"], value))
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                return None
            position += 1
    return found


def _unwrap(expression: str) -> tuple[tuple[str, ...], re.Match[str]] | None:
    functions: list[str] = []
    while True:
        selector = _SELECTOR.fullmatch(expression)
        if selector is not None:
            return tuple(functions), selector
        call = _CALL.fullmatch(expression)
        if call is None or call["func"] not in FUNCTIONS or not _balanced(call["arg"]):
            return None
        functions.append(call["func"])
        expression = call["arg"]


def _summed_selector(query: str) -> tuple[tuple[str, ...], re.Match[str]] | None:
    """The functions and the selector of a `sum(...)` query, None when it is not that shape."""
    outer = _CALL.fullmatch(query)
    if outer is None or outer["func"] != "sum" or not _balanced(outer["arg"]):
        return None
    return _unwrap(outer["arg"])


def _groupable(matcher: Matcher) -> bool:
    """An equality on a plain value of a label (not the name): its value can be lifted out."""
    return matcher.op == "=" and matcher.label != "__name__" and bool(
        _PLAIN.fullmatch(matcher.value))


def _split(matchers: list[Matcher]) -> tuple[list[Matcher], tuple[Matcher, ...]] | None:
    """The matchers to group by and those kept as written; None when there is none to group by
    or a label would be grouped twice."""
    grouped = [m for m in matchers if _groupable(m)]
    labels = [m.label for m in grouped]
    if not grouped or len(set(labels)) != len(labels):
        return None
    return grouped, tuple(m for m in matchers if m not in grouped)


def shape_of(query: str) -> Shape | None:
    """The query's shape when it can share a grouped query, else None."""
    unwrapped = _summed_selector(query)
    if unwrapped is None:
        return None
    functions, selector = unwrapped
    matchers = _matchers(selector["matchers"])
    split = None if matchers is None else _split(matchers)
    if split is None:
        return None
    grouped, fixed = split
    return Shape(
        functions,
        selector["name"] or "",
        fixed,
        tuple(m.label for m in grouped),
        tuple(m.value for m in grouped),
        selector["range"],
    )
