"""The sharding domain stays pure: no kopf, Kubernetes client, HTTP library or outer layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[1] / "operator" / "adaptive_operator" / "domain"
FORBIDDEN = ("kopf", "kubernetes", "prometheus_api_client", "requests", "urllib3", "aiohttp",
             "adaptive_operator.adapters", "adaptive_operator.handlers", "time", "random")
MODULES = ("slots", "rebalancing", "migration", "resharding", "status", "manifests")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_domain_module_imports_nothing_impure(module: str) -> None:
    names = imported(DOMAIN / "sharding" / f"{module}.py")
    bad = {n for n in names for f in FORBIDDEN if n == f or n.startswith(f + ".")}
    assert bad == set()
