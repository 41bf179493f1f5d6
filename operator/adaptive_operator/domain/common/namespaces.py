"""Which namespaces the operator serves, from `--namespace` values.

Exact names are handed to kopf, which then watches those namespaces only. A pattern
(`team-*`, `!*-pr-*`) is matched here instead, on a cluster-wide watch: kopf's own pattern
support lists the namespaces once and starts its watch from a second listing, and a namespace
created between the two is never served until a restart. The syntax is kopf's: comma-separated
globs with `*` and `?`, `!` excludes, a leading exclusion implies a catch-all before it, and a
later inclusion only re-admits a namespace an exclusion dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

PATTERN_CHARACTERS = frozenset("*?!,[")


def is_pattern(value: str) -> bool:
    return any(char in PATTERN_CHARACTERS for char in value)


def matches(name: str, pattern: str) -> bool:
    """Whether `name` is selected by one pattern value."""
    globs = _globs(pattern)
    if not fnmatchcase(name, globs[0]):
        return False  # later inclusions only re-admit what an exclusion dropped
    selected = True
    for glob in globs[1:]:
        if glob.startswith("!"):
            selected = selected and not fnmatchcase(name, glob[1:])
        else:
            selected = selected or fnmatchcase(name, glob)
    return selected


def _globs(pattern: str) -> list[str]:
    """The pattern's globs, after the catch-all that an empty pattern or a leading exclusion
    implies."""
    globs = [part.strip() for part in pattern.split(",") if part.strip()]
    if not globs or globs[0].startswith("!"):
        globs.insert(0, "*")
    return globs


def in_scope(name: str | None, values: Sequence[str]) -> bool:
    """Whether a namespace is served: no values serve every namespace."""
    if not values:
        return True
    return name is not None and any(matches(name, value) for value in values)


@dataclass(frozen=True)
class WatchScope:
    """What kopf watches (`clusterwide`, or exact `namespaces`) and the `patterns` the
    handlers filter by (empty: every object kopf hands over is served)."""

    clusterwide: bool
    namespaces: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


def watch_scope(values: Sequence[str]) -> WatchScope:
    if not values:
        return WatchScope(clusterwide=True)
    if any(is_pattern(value) for value in values):
        return WatchScope(clusterwide=True, patterns=tuple(values))
    return WatchScope(clusterwide=False, namespaces=tuple(values))
