"""domain/ stays pure: no kopf, Kubernetes client, HTTP library, adapters or handlers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[1] / "operator" / "adaptive_operator" / "domain"
FORBIDDEN = (
    "kopf",
    "kubernetes",
    "prometheus_api_client",
    "requests",
    "urllib3",
    "aiohttp",
    "httpx",
    "adaptive_operator.adapters",
    "adaptive_operator.handlers",
)


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted(DOMAIN.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(DOMAIN)))
def test_domain_module_imports_nothing_impure(path: Path) -> None:
    bad = {
        m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
    }
    assert bad == set()


def test_the_check_sees_imports() -> None:
    assert "adaptive_operator.domain.scaling.records" in imported_modules(
        DOMAIN / "scaling" / "algorithm.py"
    )
