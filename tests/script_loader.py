"""Load a plain script of the repository (e2e/workloads, e2e/images/build) as a module by path:
they are programs shipped in images or run before the venv exists, not part of a package."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import signal
import subprocess
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


class Program:
    """A workload program run as its own process, as in its container: `main` and signals."""

    def __init__(self, name: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "e2e/workloads" / f"{name}.py"), *args],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()  # printed once it listens: "... on :PORT ..."
        port = banner.split(" on :", 1)[1].split()[0].rstrip(",")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:  # a failed test must not leave the server behind
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends: the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code
