"""Pods that only have to exist in the e2e suite (`Cluster.stand_in`, e2e/conftest.py): KWOK's
fake pods on the local cluster unless asked otherwise; elsewhere (kind) real containers of the
workload image, never pulled, placed where containers run, that idle or, in a Job, succeed."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

E2E = Path(__file__).resolve().parent.parent / "e2e"


def load_e2e_conftest() -> ModuleType:
    """e2e/conftest.py under a name of its own (tests/ has a conftest module too)."""
    sys.path.insert(0, str(E2E))  # its own imports: xdist_groups, cluster_lock, metrics_source
    spec = importlib.util.spec_from_file_location("e2e_conftest", E2E / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


e2e = load_e2e_conftest()
STAND_INS = sys.modules["modes"].STAND_INS  # imported by the conftest, from e2e/


def cluster(local: bool) -> Any:
    return e2e.Cluster("kubeconfig", None, None, local=local)


def test_a_fake_stand_in_is_a_kwok_pod_of_its_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STAND_INS.variable, raising=False)
    local = cluster(True)
    pod = local.stand_in("cache", "registry.example/cache:1", exits=True)
    assert pod == {"tolerations": [e2e.KWOK_TOLERATION],
                   "containers": [{"name": "cache", "image": "registry.example/cache:1"}]}
    assert local.stand_in_image("registry.example/app:2") == "registry.example/app:2"


@pytest.mark.parametrize(("exits", "command"), [(False, ["sh", "-c", e2e.IDLE]), (True, ["true"])])
def test_a_real_stand_in_idles_or_succeeds_where_containers_run(
        monkeypatch: pytest.MonkeyPatch, exits: bool, command: list[str]) -> None:
    monkeypatch.setenv(STAND_INS.variable, "real")
    local = cluster(True)
    pod = local.stand_in("migrate", "registry.example/migrate:1", exits=exits)
    assert pod["nodeSelector"] == e2e.REAL_NODE_SELECTOR  # the local cluster's real node
    assert pod["tolerations"] == [e2e.REAL_NODE_TOLERATION]
    (container,) = pod["containers"]
    assert (container["name"], container["image"]) == ("migrate", e2e.WORKLOAD_IMAGE)
    assert container["imagePullPolicy"] == "Never" and container["command"] == command
    assert "readinessProbe" not in container  # ready as soon as it runs
    # An idle one keeps its crash mark where a restarted container finds it.
    assert ("volumes" in pod) is (not exits) and ("volumeMounts" in container) is (not exits)
    assert local.stand_in_image("registry.example/app:1") == e2e.WORKLOAD_IMAGE


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """The sessions of the idle scripts a test starts, killed after it: in a container the
    script is PID 1 and its `sleep` dies with it; here the `sleep` would outlive the test."""
    started: list[int] = []
    yield started
    for session in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, signal.SIGKILL)


def idle(mark: Path, sessions: list[int]) -> subprocess.Popen[bytes]:
    """The real stand-in's script, run here by sh, its crash mark in a folder of the test."""
    script = e2e.IDLE.replace(e2e.CRASH_MARK, str(mark))
    process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    sessions.append(process.pid)
    # Its traps are set once it has started `sleep` (signalled before, sh would just die).
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 10
    while not children.read_text().strip():
        assert time.monotonic() < deadline, "the idle script never started sleep"
        time.sleep(0.01)
    return process


def test_a_real_stand_in_crashes_on_usr1_and_at_every_start_after(
        tmp_path: Path, sessions: list[int]) -> None:
    mark = tmp_path / "loop"
    first = idle(mark, sessions)
    assert first.poll() is None  # it idles
    first.send_signal(signal.SIGUSR1)
    assert first.wait(timeout=5) == 1 and mark.exists()
    assert subprocess.run(["sh", "-c", e2e.IDLE.replace(e2e.CRASH_MARK, str(mark))],
                          timeout=5).returncode == 1  # restarted, it crashes at once


def test_a_real_stand_in_ends_at_once_on_sigterm(tmp_path: Path, sessions: list[int]) -> None:
    process = idle(tmp_path / "loop", sessions)
    process.terminate()
    assert process.wait(timeout=5) == 0


def test_on_kind_a_stand_in_goes_to_any_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STAND_INS.variable, raising=False)
    pod = cluster(False).stand_in()
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["containers"][0]["image"] == e2e.WORKLOAD_IMAGE
