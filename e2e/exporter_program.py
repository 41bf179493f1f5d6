#!/usr/bin/env python3
"""The exporter pod's program: gauges that a test sets, served as Prometheus text.

    python3 exporter_program.py --port 8080

``POST /set`` with a JSON body ``{"metric": NAME, "value": NUMBER, "labels": {..}}`` sets one
gauge (the value may also be the strings "NaN", "+Inf" or "-Inf"); ``/metrics`` serves them all;
``/ready`` answers 200. The e2e suite runs it on clusters where Prometheus cannot reach a process
of the test's host (kind): Prometheus scrapes the pod through Kubernetes service discovery, and
the test sets gauges through the API server's pod proxy. Standard library only: the pod runs
it from a ConfigMap in the workload image (metrics_source.py), so no image needs rebuilding.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
Key = tuple[tuple[str, str], ...]


def number(value: float) -> str:
    """A sample value as the text format writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Gauges:
    """The gauges set so far, by metric and label set."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Key, float]] = {}
        self._lock = threading.Lock()

    def set(self, metric: str, value: float, labels: Mapping[str, str]) -> None:
        if not NAME.fullmatch(metric) or not all(LABEL.fullmatch(k) for k in labels):
            raise ValueError(f"not a metric or label name: {metric} {sorted(labels)}")
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
        with self._lock:
            self._values.setdefault(metric, {})[key] = float(value)

    def text(self) -> str:
        lines: list[str] = []
        with self._lock:
            for metric, series in sorted(self._values.items()):
                lines.append(f"# TYPE {metric} gauge")
                for key, value in sorted(series.items()):
                    labels = ",".join(f'{k}="{escaped(v)}"' for k, v in key)
                    lines.append(f"{metric}{{{labels}}} {number(value)}")
        return "\n".join(lines) + "\n"


def handler(gauges: Gauges) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def answer(self, code: int, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self.answer(200, gauges.text())
            elif self.path == "/ready":
                self.answer(200, "ok\n")
            else:
                self.answer(404, "not found\n")

        def do_POST(self) -> None:
            if self.path != "/set":
                self.answer(404, "not found\n")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                gauges.set(body["metric"], float(body["value"]), body.get("labels") or {})
            except (ValueError, KeyError, TypeError) as error:
                self.answer(400, f"{error}\n")
                return
            self.answer(200, "set\n")

        def log_message(self, format: str, *args: object) -> None:
            pass  # a test sets gauges many times a second: no line per request

    return Handler


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), handler(Gauges()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    serve(args.port).serve_forever()


if __name__ == "__main__":
    main()
