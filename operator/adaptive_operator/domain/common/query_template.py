"""Placeholders in a service's PromQL, filled with what the operator knows of the target.

`{{namespace}}` and `{{name}}` (the service's namespace and its target's name) go inside a
quoted label value: `{namespace="{{namespace}}"}`. `{{pods}}` is a regex of the target's pod
names for a regex matcher: `{pod=~"{{pods}}"}`. Each value is escaped for where it goes (regex
metacharacters, then the PromQL string's backslashes and quotes), so a name can never end the
string or widen the match. An unknown placeholder is refused, never sent as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
KNOWN = ("namespace", "name", "pods")
_REGEX_SAFE = re.compile(r"[A-Za-z0-9_-]")


class TemplateError(ValueError):
    """The query cannot be filled in; the message says why, for a condition."""


@dataclass(frozen=True)
class TargetValues:
    namespace: str
    name: str
    pods: Sequence[str] | None = None  # None: not known here (scaling, or pods not readable)


def _string(value: str) -> str:
    """Escaped for a double- or single-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


def pods_regex(pods: Sequence[str]) -> str:
    """An RE2 alternation matching exactly these names (Prometheus anchors the regex)."""
    return "|".join("".join(c if _REGEX_SAFE.fullmatch(c) else "\\" + c for c in pod)
                    for pod in sorted(set(pods)))


def placeholders(query: str) -> list[str]:
    return [match.group(1) for match in PLACEHOLDER.finditer(query)]


def check(query: str) -> None:
    """Refuse a placeholder the operator does not know (said where the spec is read)."""
    unknown = sorted({name for name in placeholders(query) if name not in KNOWN})
    if unknown:
        raise TemplateError(f"unknown placeholder {{{{{unknown[0]}}}}} (known: "
                            + ", ".join(f"{{{{{k}}}}}" for k in KNOWN) + ")")


def render(query: str, values: TargetValues) -> str:
    """The query with its placeholders filled in."""
    check(query)
    used = set(placeholders(query))
    if "pods" in used and values.pods is None:
        raise TemplateError("{{pods}} is known to the health metrics only, once the target's "
                            "pods can be read")
    if "pods" in used and not values.pods:
        # An empty regex would match series without the label: every pod of the cluster.
        raise TemplateError("{{pods}}: the target has no pods yet")
    filled: Mapping[str, str] = {
        "namespace": _string(values.namespace),
        "name": _string(values.name),
        "pods": _string(pods_regex(values.pods or ())),
    }
    return PLACEHOLDER.sub(lambda match: filled[match.group(1)], query)
