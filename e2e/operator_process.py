"""The operator as a real process, started by e2e tests against the cluster."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import wait_until

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".state" / "e2e-logs"
# A service whose target does not exist: handled at once (TargetNotFound), acting on nothing.
CANARY = """apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {name: canary}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: absent}
  minReplicas: 1
  maxReplicas: 2
  mode: DryRun
  metrics: [{name: load, query: 'vector(1)', targetPerReplica: 1}]
"""


# Ports for listeners the tests start, below the kernel's ephemeral range (32768 and up by
# default): a port found free by binding port 0 comes from that range, and an outgoing
# connection can be handed it before the operator binds it (an operator died of "Address
# already in use" in a rehearsal). Each xdist worker takes its own slice of 800 ports, so two
# workers never pick the same one.
PORTS_FROM, PORTS_PER_WORKER, SLICES = 20_000, 800, 15
_offsets = itertools.count()


def _slice() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return (int(worker) if worker.isdigit() else 0) % SLICES


def free_port() -> int:
    """A port of this worker's slice that nothing listens on or holds."""
    base = PORTS_FROM + _slice() * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = base + next(_offsets) % PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or lingering after a test before
            return port
    raise RuntimeError(f"no free port in {base}..{base + PORTS_PER_WORKER - 1}")


def role(port: int) -> str | None:
    """The role /healthz reports (starting, standby, leader), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return str(json.load(response)["role"])
    except OSError:
        return None


class OperatorProcess:
    """`adaptive-operator run` with its own ports and log file; stopped like a pod (SIGTERM)."""

    def __init__(self, name: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), lease_name: str | None = None,
                 measure_coverage: bool = True) -> None:
        self.lease_name = lease_name or f"e2e-{name}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = dict(os.environ, **(env or {}))
        if not measure_coverage:
            # Coverage tracing slows model fitting (statsmodels, scikit-learn) many times over,
            # which would make timing-bound scenarios test the tracer, not the operator.
            self.env.pop("COVERAGE_PROCESS_CONFIG", None)
            self.env.pop("COVERAGE_PROCESS_START", None)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def role(self) -> str | None:
        return role(self.health_port)

    def start(self, wait_for: str = "leader") -> OperatorProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adaptive_operator", "run", "--log-format", "json",
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             "--lease-name", self.lease_name, *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        try:
            wait_until(lambda: self.proc is not None and (self.proc.poll() is not None
                                                          or self.role() == wait_for),
                       # Generous: with the machine loaded (load average ~20 on 2 cores), merely
                       # importing kopf, kubernetes and statsmodels took 28 s of wall time for
                       # 2 s of CPU, and a start once missed a 60 s wait.
                       180, f"the operator to report {wait_for} on /healthz")
        except AssertionError:
            # A process left running holds (or later takes) the test's Lease: every later run
            # of the module would then wait as a standby and fail the same way.
            self.stop()
            raise
        assert self.proc.poll() is None, f"the operator exited: see {self.log_path}"
        pattern = self._namespace_pattern()
        if wait_for == "leader" and pattern is not None:
            wait_until(lambda: self._handles_new_namespace(pattern.rstrip("*")), 180,
                       f"the operator to handle a new namespace matching {pattern}")
        return self

    def _namespace_pattern(self) -> str | None:
        for flag, value in itertools.pairwise(self.args):
            if flag == "--namespace" and value.endswith("*"):
                return value
        return None

    def _handles_new_namespace(self, prefix: str) -> bool:
        """Whether a service in a namespace created now is handled. Tests create namespaces
        and services right after the start, so they wait until the operator's watch is up: a
        fresh namespace's service gets a status."""
        ns = f"{prefix}canary-{uuid.uuid4().hex[:5]}"

        def run(*args: str, stdin: str | None = None) -> str:
            return subprocess.run(["kubectl", "--request-timeout=30s", *args], env=self.env,
                                  input=stdin, capture_output=True, text=True, timeout=60,
                                  check=True).stdout

        run("create", "namespace", ns)
        try:
            run("apply", "-n", ns, "-f", "-", stdin=CANARY)
            try:
                wait_until(lambda: run("get", "adaptiveservice", "canary", "-n", ns, "-o",
                                       "jsonpath={.status.observedGeneration}").strip(),
                           20, f"the canary in {ns} handled")
                return True
            except AssertionError:
                return False
        finally:
            run("delete", "adaptiveservice", "canary", "-n", ns, "--wait=false")
            run("delete", "namespace", ns, "--wait=false")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as response:
            return str(response.read().decode())

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{"):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@contextmanager
def watching(name: str, prefix: str) -> Iterator[OperatorProcess]:
    """An operator (coverage measured) watching the namespaces `<prefix>*`, e.g. a module's
    `e2e-<tag>-`: started and ready on entry, stopped (SIGTERM) on exit, even after a failure."""
    process = OperatorProcess(name, args=("--namespace", f"{prefix}*")).start()
    try:
        yield process
    finally:
        process.stop()
