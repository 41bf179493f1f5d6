"""Small helpers shared by the e2e tests."""

from __future__ import annotations

import json
import select
import shutil
import socket
import socketserver
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

# Not imported at run time: unit tests import this module where `conftest` is tests/' own.
if TYPE_CHECKING:
    from conftest import Cluster

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Check(Protocol[T_co]):
    """What `wait_until` polls, with no arguments. Not Callable[[], ...]: mypy cannot infer a
    lambda that binds a loop variable through a default (`lambda n=name: ...`) against that."""

    def __call__(self) -> T_co | None: ...


def wait_until(check: Check[T], timeout: float, what: str,
               interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def helm_binary() -> str:
    """Helm as a user runs it: from PATH (`e2e/cluster up` puts the built one there; the kind
    workflow installs it)."""
    found = shutil.which("helm")
    assert found, "helm is not on PATH (e2e/cluster up puts it there)"
    # The built file, not the bin folder's link, which `e2e/cluster up` may be re-creating.
    return str(Path(found).resolve())


def prom_query(url: str, query: str) -> list[dict[str, object]]:
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(full, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


class HoldingProxy:
    """A TCP proxy in front of a server (Prometheus) that passes traffic through, or, with
    `holding` set, holds every request unanswered for `hold` seconds and then drops it: a server
    slower than its clients' timeouts. Held connections include those already open, so a client's
    connection pool gets no answers either."""

    def __init__(self, upstream_url: str, hold: float = 12.0, port: int = 0) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hold = hold
        self.holding = threading.Event()
        self.closing = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        if self.holding.is_set():
            self.closing.wait(self.hold)
            return
        with socket.create_connection(self.upstream, timeout=10) as upstream:
            while not self.closing.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                if self.holding.is_set():
                    self.closing.wait(self.hold)
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


def changes_chain(messages: list[str], first: int, last: int) -> bool:
    """The Scaled Events ("Deployment web 1 -> 3: ...") make one chain from `first` to `last`
    that takes every step once: nothing lost, nothing done twice."""
    steps = [tuple(int(n) for n in m.split(":")[0].split()[-3::2]) for m in messages]
    following = {start: end for start, end in steps}
    current = first
    for _ in steps:
        if current not in following:
            return False
        current = following[current]
    return len(following) == len(steps) and current == last


def deployment_yaml(cluster: Cluster, name: str, replicas: int = 1,
                    image: str | None = None) -> str:
    """A Deployment of stand-ins (`Cluster.stand_in`: `image`, or its default, is their version
    on KWOK), as JSON (which kubectl reads as YAML)."""
    return deployment_of(name, replicas, cluster.stand_in("app", image))


def deployment_of(name: str, replicas: int, pod: dict[str, Any]) -> str:
    """A Deployment of pods with this spec, as JSON."""
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": pod}},
    })
