"""scripts/test's two pytest runs: everything but the tests marked `last` (three workers), then
those alone, adding to its coverage; and its exit status. Run here in a copy of the script
beside stand-ins for scripts/setup, e2e/cluster and .venv/bin/python, which record their
arguments and exit as each case says."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The stand-in python: phase 1 (`-m 'not last'`) and phase 2 (`-m last`) exit with $FIRST and
# $SECOND; every call appends its arguments to calls.txt.
PYTHON = """#!/usr/bin/env bash
echo "$* | disposable=${ADAPTIVE_E2E_CLUSTER_DISPOSABLE:-}" >> "$(dirname "$0")/../../calls.txt"
case "$*" in
  *"not last"*) exit "$FIRST" ;;
  *"-m last"*) exit "$SECOND" ;;
esac
exit 99
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    stand_ins = {"scripts/setup": "#!/bin/sh\nexit 0\n",
                 "e2e/cluster": '#!/bin/sh\nexit "$CLUSTER_STATUS"\n',
                 ".venv/bin/python": PYTHON}
    for name, text in stand_ins.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return tmp_path


def run(checkout: Path, first: int, second: int, status: int = 1,
        *args: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTIVE_E2E_CLUSTER_DISPOSABLE"}
    env.update(FIRST=str(first), SECOND=str(second), CLUSTER_STATUS=str(status))
    result = subprocess.run([str(checkout / "scripts" / "test"), *args], env=env,
                            capture_output=True, text=True, timeout=60)
    calls = checkout / "calls.txt"
    return result.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_the_others_run_on_three_workers_then_the_last_ones_alone(checkout: Path) -> None:
    rc, calls = run(checkout, 0, 0, 1, "e2e/", "-x")
    assert rc == 0
    first, second = calls
    assert first.startswith("-m pytest -n 3 --dist loadgroup -m not last --cov --cov-report= ")
    assert "--cov-fail-under=0" in first and " e2e/ -x |" in first
    # Phase 2 adds to phase 1's coverage and reports both, held to the configured bar.
    assert second.startswith("-m pytest -m last --cov --cov-append --cov-report=term e2e/ -x")
    assert "-n" not in second.split()


def test_a_cluster_not_running_before_is_this_runs_to_take_down(checkout: Path) -> None:
    _, calls = run(checkout, 0, 0, 1)
    assert all(call.endswith("disposable=1") for call in calls)
    _, calls = run(checkout, 0, 0, 0)  # `e2e/cluster status`: running already
    assert all(call.endswith("disposable=") for call in calls[2:])


@pytest.mark.parametrize(("first", "second", "expected"), [
    (1, 0, 1),  # a failure in phase 1; phase 2 still ran (it takes the cluster down)
    (0, 1, 1),
    (2, 3, 2),
    (5, 0, 0),  # only tests marked last were selected
])
def test_the_status_is_the_first_failure(checkout: Path, first: int, second: int,
                                         expected: int) -> None:
    rc, calls = run(checkout, first, second)
    assert rc == expected
    assert len(calls) == 2


def test_no_test_marked_last_is_fine(checkout: Path) -> None:
    # pytest-cov's report (and bar) came with phase 2's run: it exits 5, not 1, when the bar holds.
    rc, calls = run(checkout, 0, 5, 1, "tests/")
    assert rc == 0
    assert len(calls) == 2


def test_a_phase_1_failure_counts_when_phase_2_has_nothing_to_run(checkout: Path) -> None:
    rc, _ = run(checkout, 1, 5)
    assert rc == 1


def test_no_test_collected_at_all_is_a_failure(checkout: Path) -> None:
    rc, calls = run(checkout, 5, 5)
    assert rc == 1
    assert len(calls) == 2
