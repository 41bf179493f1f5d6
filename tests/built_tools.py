"""Binaries that `e2e/cluster build` makes from their Go modules (e2e/build/<group>), found in
its cache. Without one a test skips on a developer's machine and fails in CI (where `CI` is
set), so that CI never passes by skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("ADAPTIVE_CACHE", Path.home() / ".cache" / "adaptive-operator"))


def built(group: str, name: str) -> Path:
    """The newest build of NAME in GROUP's cache folders (one per pin), unfinished ones left out."""
    found = [p for p in CACHE.glob(f"bin/{group}-*/{name}") if not p.parent.name.endswith(".tmp")]
    if not found:
        reason = f"{name} not built yet (`e2e/cluster build` makes it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return max(found, key=lambda p: p.stat().st_mtime)
