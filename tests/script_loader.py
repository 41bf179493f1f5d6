"""Load a plain script of the repository (e2e/workloads, e2e/images/build) as a module by path:
they are programs shipped in images or run before the venv exists, not part of a package."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str, name: str) -> ModuleType:
    """The module, registered under `name` (dataclasses look their module up in sys.modules)."""
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(name, str(ROOT / relative))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load_workload(name: str) -> ModuleType:
    return load_script(f"e2e/workloads/{name}.py", name)
