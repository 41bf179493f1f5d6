"""The house bars, checked by the tests rather than by memory."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "operator" / "adaptive_operator"
BIN = Path(sys.executable).parent
MAX_MODULE_LINES = 500
# The house bar, as radon counts it (boolean operators and comprehensions too, which ruff's
# mccabe leaves out): every function of the repository under 10 (the package, the tests, e2e,
# the benchmarks and the Python scripts).
MAX_COMPLEXITY = 9
# The handlers observe and apply; what they decide lives in the domain. A tighter bar keeps it so.
MAX_HANDLER_COMPLEXITY = 6
SCRIPT_FOLDERS = ("e2e", "benchmarks", "tests")  # modules by top-level name, not packages


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_operator_folder_is_not_a_package() -> None:
    # A package named `operator` would shadow the standard library's operator module.
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_ruff_lint_including_complexity_under_ten() -> None:
    result = run(str(BIN / "ruff"), "check", "operator", "tests", "e2e", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lints_the_python_scripts_too() -> None:
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert python_scripts() <= set(ruff["extend-include"])


def blocks(found: list[Any]) -> list[Any]:
    """Radon's functions, classes and methods, with the functions nested in them."""
    return [*found, *(nested for block in found
                      for nested in blocks(getattr(block, "closures", [])))]


def too_complex(module: Path, limit: int) -> list[str]:
    """The module's blocks whose radon cyclomatic complexity is above `limit`."""
    found = blocks(cc_visit(module.read_text()))
    return [f"{b.fullname} ({b.complexity})" for b in found if b.complexity > limit]


@pytest.mark.parametrize("module", sorted((PACKAGE / "handlers").glob("*.py")),
                         ids=lambda p: p.name)
def test_handler_blocks_stay_at_complexity_six_or_less(module: Path) -> None:
    found = too_complex(module, MAX_HANDLER_COMPLEXITY)
    assert not found, found


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def python_scripts() -> set[str]:
    """The suffix-less programs written in Python (a `#!...python` first line)."""
    found = set()
    for folder in (*SCRIPT_FOLDERS, "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and not path.suffix:
                with path.open("rb") as program:
                    if re.match(rb"#!.*python", program.readline()):
                        found.add(str(path.relative_to(ROOT)))
    return found


def test_mypy_checks_the_tests_e2e_benchmarks_and_python_scripts_too() -> None:
    files = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
    assert {"operator/adaptive_operator", *SCRIPT_FOLDERS} | python_scripts() <= files


def test_domain_imports_no_io_library() -> None:
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def all_modules() -> list[Path]:
    """Every Python module of the repository: the package, the test, e2e and benchmark modules,
    and the suffix-less scripts."""
    found = set(PACKAGE.rglob("*.py"))
    found |= {path for folder in SCRIPT_FOLDERS for path in (ROOT / folder).rglob("*.py")}
    found |= {ROOT / script for script in python_scripts()}
    return sorted(found)


def module_id(module: Path) -> str:
    return str(module.relative_to(ROOT))


@pytest.mark.parametrize("module", all_modules(), ids=module_id)
def test_modules_stay_under_500_lines(module: Path) -> None:
    assert len(module.read_text().splitlines()) < MAX_MODULE_LINES


@pytest.mark.parametrize("module", all_modules(), ids=module_id)
def test_blocks_stay_under_complexity_ten(module: Path) -> None:
    found = too_complex(module, MAX_COMPLEXITY)
    assert not found, found


def test_test_modules_have_unique_basenames() -> None:
    # pytest imports tests/ and e2e/ modules by basename: a clash stops the whole collection.
    names = [p.name for folder in ("tests", "e2e") for p in (ROOT / folder).glob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
