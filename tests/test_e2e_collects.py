"""Every e2e module imports and is collected: the unit tier's checks (mypy, ruff) do not follow
the e2e modules' imports of the package, and a rename once broke one that only CI then found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_e2e_module_is_collected() -> None:
    # Collection starts no cluster (the fixtures do); KUBECONFIG keeps it off the local one anyway.
    env = {**os.environ, "KUBECONFIG": str(ROOT / "no-such-kubeconfig"),
           "PYTHONPATH": str(ROOT / "operator")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", "--no-cov", "e2e"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "error" not in done.stdout.lower().splitlines()[-1], done.stdout[-2000:]
