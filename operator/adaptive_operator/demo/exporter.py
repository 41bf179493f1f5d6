"""A small Prometheus exporter whose values the caller sets: the stand-in for a real workload.

The test cluster's pods run no processes (KWOK), so the metrics a workload would expose are
served from here, on loopback, and Prometheus finds them through file-based service discovery.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class Exporter:
    """Serves gauges on 127.0.0.1 and registers itself with Prometheus' file discovery."""

    def __init__(self, name: str, targets_dir: Path | None, port: int = 0) -> None:
        self.name = name
        self.registry = CollectorRegistry()
        self._gauges: dict[str, Gauge] = {}
        self._lock = threading.Lock()
        self._targets_dir = targets_dir
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._requested_port = port
        self.port = 0

    def start(self) -> Exporter:
        self._server, self._thread = start_http_server(
            self._requested_port, addr="127.0.0.1", registry=self.registry)
        self.port = int(self._server.server_port)
        if self._targets_dir is not None:
            target = [{"targets": [f"127.0.0.1:{self.port}"], "labels": {"exporter": self.name}}]
            tmp = self._targets_dir / f".{self.name}.json.tmp"
            tmp.write_text(json.dumps(target))
            tmp.replace(self.target_file)  # atomic: Prometheus never reads half a file
        return self

    @property
    def target_file(self) -> Path:
        assert self._targets_dir is not None
        return self._targets_dir / f"{self.name}.json"

    def set(self, metric: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        labels = dict(labels or {})
        with self._lock:
            gauge = self._gauges.get(metric)
            if gauge is None:
                gauge = Gauge(metric, f"{metric} (set by the {self.name} exporter)",
                              sorted(labels), registry=self.registry)
                self._gauges[metric] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)

    def stop(self) -> None:
        if self._targets_dir is not None:
            self.target_file.unlink(missing_ok=True)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
