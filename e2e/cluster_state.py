"""What every part of `e2e/cluster` shares: where things live, logging, the state file, processes.

Standard library only: `e2e/cluster` runs before the project's venv exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ADAPTIVE_CACHE", Path.home() / ".cache" / "adaptive-operator"))
STATE = Path(os.environ.get("ADAPTIVE_CLUSTER_STATE", CACHE / "cluster"))


def cluster_name(state: Path) -> str:
    """ADAPTIVE_CLUSTER_NAME if set; else the name of the one KWOK cluster the state holds, so
    that a command run without the variable on a cluster made with it (a benchmark's) still
    finds it; else `adaptive`."""
    named = os.environ.get("ADAPTIVE_CLUSTER_NAME")
    if named:
        return named
    made = kwok_clusters(state)
    return made[0].name if len(made) == 1 else "adaptive"


def kwok_clusters(state: Path) -> list[Path]:
    """The folder of every KWOK cluster `state` holds, by name."""
    return sorted((state / "kwok" / "clusters").glob("*/"))


CLUSTER_NAME = cluster_name(STATE)


def cluster_dir(name: str = CLUSTER_NAME) -> Path:
    """kwokctl's folder for the cluster `name` of this state: its kwok.yaml, pki, pids, logs."""
    return STATE / "kwok" / "clusters" / name


def command_line(pid: int) -> list[str]:
    """The arguments process `pid` runs with; none when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []
KUBE_VERSION = "v1.36.3"

State = dict[str, object]


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def read_state() -> State:
    path = STATE / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(state: State) -> None:
    tmp = STATE / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(STATE / "state.json")


def section(state: State, key: str) -> dict[str, object]:
    """A part of the state that is a mapping, created empty when missing."""
    value = state.setdefault(key, {})
    assert isinstance(value, dict)
    return value


def alive(pid: int) -> bool:
    """Running, and not a zombie: components started again by `restart` are orphans, which a
    container's init may reap late."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stop_pid(pid: int, what: str, grace: float = 20) -> None:
    if not alive(pid):
        return
    log(f"stopping {what} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, f"{what} to exit")


def spawn(name: str, argv: list[str], logs: Path, env: dict[str, str] | None = None) -> int:
    """Start a long-running component in its own session, its output appended to LOGS/NAME.log."""
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    log(f"started {name} (pid {proc.pid})")
    return proc.pid


def wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"[cluster] timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run(*cmd: str, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A short command; its output is shown only when it fails and CHECK is set."""
    result = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit(f"[cluster] {' '.join(cmd[:3])} ... failed (exit {result.returncode})")
    return result
