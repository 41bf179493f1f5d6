"""/healthz for liveness and readiness probes, served from the first moment of the process.

Standby replicas (waiting for the leader's Lease) are healthy too: only a stuck process is not.
Registered checks say what is stuck (the event loop has not beaten, every worker thread hangs):
then /healthz answers 503 with the reasons, and the liveness probe restarts the process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE: dict[str, str] = {"role": "starting"}
CHECKS: dict[str, Callable[[], str | None]] = {}  # name -> a reason when unhealthy


def watch(name: str, check: Callable[[], str | None]) -> None:
    CHECKS[name] = check


def problems() -> dict[str, str]:
    found = {name: check() for name, check in list(CHECKS.items())}
    return {name: reason for name, reason in found.items() if reason}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/healthz":
            self.send_error(404)
            return
        failing = problems()
        body = json.dumps({**STATE, **({"stuck": failing} if failing else {})}).encode()
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # probes every few seconds would drown the logs


def serve(port: int, address: str = "0.0.0.0") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="healthz").start()
    return server


def set_role(role: str) -> None:
    STATE["role"] = role


def set_shards(held: tuple[int, ...]) -> None:
    """The shard Leases this replica holds (with --lease-shards above 1), e.g. "0,3"."""
    STATE["shards"] = ",".join(str(shard) for shard in held)
