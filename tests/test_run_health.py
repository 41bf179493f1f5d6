"""`adaptive-operator run` wires /healthz: served from the start (role `starting`), `standby`
while it waits for the leader's Lease, `leader` once it holds it, when kopf starts; without
leader election, straight from `starting` to `leader`. Everything else the command starts is
replaced by a fake; /healthz is the real server, asked over HTTP at each step."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from typing import Any

import kopf
import pytest

from adaptive_operator import logs
from adaptive_operator.adapters import (
    health,
    kube,
)
from adaptive_operator.cli import build_parser
from adaptive_operator.commands import run as run_command


class Probe:
    """Asks the real /healthz what it says, and remembers each answer's role."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.roles: list[str] = []

    def ask(self) -> None:
        assert self.server is not None
        port = self.server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
            self.roles.append(json.loads(answer.read())["role"])


class Lease:
    """The leader's Lease process, won at once (or never, when `ends`); the probe asks /healthz
    while it waits."""

    def __init__(self, probe: Probe, ends: bool = False) -> None:
        self.probe, self.ends = probe, ends
        self.started = self.released = False

    def may_write(self, shard: int) -> Any:
        return lambda: True

    def start(self) -> None:
        self.started = True

    def wait_held(self, stop: threading.Event) -> bool:
        self.probe.ask()
        return not self.ends

    def keep(self, stop: threading.Event, on_lost: Any) -> None:
        stop.wait()

    def release(self) -> None:
        self.released = True


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Any:
    found = Probe()
    serve = health.serve

    def serve_and_ask(port: int, address: str = "127.0.0.1") -> ThreadingHTTPServer:
        found.server = serve(0, "127.0.0.1")
        found.ask()
        return found.server

    monkeypatch.setitem(health.STATE, "role", "starting")
    monkeypatch.setattr(health, "serve", serve_and_ask)
    monkeypatch.setattr(kopf, "run", lambda **_: found.ask())
    for module, name in [(logs, "configure"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    yield found
    if found.server is not None:
        found.server.shutdown()
        found.server.server_close()


def arguments(*more: str) -> Any:
    return build_parser().parse_args(["run", "--metrics-port", "0", "--health-port", "0", *more])


def test_healthz_says_starting_then_standby_then_leader(
        monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    lease = Lease(probe)
    monkeypatch.setattr(run_command, "leader_lease", lambda args: lease)
    assert run_command.run(arguments("--leader-election", "true")) == 0
    assert probe.roles == ["starting", "standby", "leader"]
    assert lease.started and lease.released  # kopf ended: the Lease is handed back


def test_a_standby_whose_lease_process_ended_exits_1_without_starting(
        monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    lease = Lease(probe, ends=True)
    monkeypatch.setattr(run_command, "leader_lease", lambda args: lease)
    assert run_command.run(arguments("--leader-election", "true")) == 1
    assert probe.roles == ["starting", "standby"]  # kopf never ran (it would have asked)
    assert lease.released


def test_with_an_election_the_leaders_lease_is_renewed_by_a_process_of_its_own() -> None:
    lease = run_command.leader_lease(arguments("--leader-election", "true",
                                               "--lease-name", "ops-lease"))
    assert lease is not None and lease.leader and not lease.process.is_alive()
    assert lease.process._args[0].name == "ops-lease"
    assert run_command.leader_lease(arguments("--leader-election", "false")) is None


def test_healthz_without_an_election_goes_from_starting_to_leader(probe: Probe) -> None:
    assert run_command.run(arguments("--leader-election", "false")) == 0
    assert probe.roles == ["starting", "leader"]
