"""Process state stays out of modules: no new module-level mutable singleton may appear.

The runtime built in `commands/run.py` is where process state belongs (issue 16: none is left
in a module).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Their state moved into objects that `run` builds (issue 16): it must not come back.
EMPTIED = ("cached_reads", "cluster_cache", "discovery", "kube", "prometheus_access",
           "prometheus_http", "workers", "workload")


def _module_state() -> Any:
    spec = importlib.util.spec_from_file_location("module_state",
                                                  ROOT / "benchmarks" / "module_state.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_no_module_level_singleton() -> None:
    assert _module_state().package_state(ROOT / "operator" / "adaptive_operator") == []


def test_the_modules_emptied_into_the_runtime_hold_no_state() -> None:
    adapters = ROOT / "operator" / "adaptive_operator" / "adapters"
    found = {name: _module_state().module_state(adapters / f"{name}.py") for name in EMPTIED}
    assert found == {name: [] for name in EMPTIED}


def test_the_count_sees_a_singleton(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "CONSTANT = {'a': 1}\n_cache: dict[str, int] = {}\n_client = None\n"
        "def get():\n    global _client\n    _client = object()\n    return _client\n"
        "LIMIT = 3\nlog = logs.get(__name__)\n_loop = _Loop()\n")
    assert _module_state().package_state(package) == ["pkg.mod._cache", "pkg.mod._client",
                                                      "pkg.mod._loop"]
