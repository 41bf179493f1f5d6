"""The scale benchmark's metrics: an exporter Prometheus scrapes, every service's noisy feed
(a latency sawtooth if asked), and the history backfilled into Prometheus before the start.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE = {"load": 7.0, "errors": 0.01, "latency": 0.1}  # load: 1 replica at 10 per replica
NOISE = {"load": 0.5, "errors": 0.002, "latency": 0.01}
CYCLE_RISE = 1.0  # latency over a cycle: from its base to twice it, then back (a sawtooth)


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


class TextExporter:
    """Serves a text exposition rendered once per update: a 1,000-service feed (3,000 series)
    rendered per scrape by prometheus_client missed the 2 s scrape timeout on the loaded
    machine, and its series went stale."""

    def __init__(self, name: str, targets_dir: Path) -> None:
        self.name, self.targets_dir, self.payload = name, targets_dir, b""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.payload
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        target = [{"targets": [f"127.0.0.1:{self.port}"], "labels": {"exporter": name}}]
        tmp = targets_dir / f".{name}.json.tmp"
        tmp.write_text(json.dumps(target))
        tmp.replace(targets_dir / f"{name}.json")

    def stop(self) -> None:
        (self.targets_dir / f"{self.name}.json").unlink(missing_ok=True)
        self.server.shutdown()


class Feed:
    """Every service's metrics, noisy around their base values; probes can be changed."""

    def __init__(self, exporter: TextExporter, services: list[str], cycle_s: float = 0.0
                 ) -> None:
        self.exporter, self.services, self.cycle_s = exporter, services, cycle_s
        self.override: dict[tuple[str, str], float] = {}
        self.stop = threading.Event()
        self.rng = random.Random(0)

    def value(self, service: str, metric: str, at: float | None = None) -> float:
        """A sample at time `at` (now if None): noise around the base, and with `cycle_s` a
        latency sawtooth of that period (a collector's cycle, which the detector finds in
        its training rows and differences away), unless a probe set the metric."""
        base = self.override.get((service, metric), BASE[metric])
        if self.cycle_s and metric == "latency" and (service, metric) not in self.override:
            phase = ((time.time() if at is None else at) % self.cycle_s) / self.cycle_s
            base *= 1.0 + CYCLE_RISE * phase
        return max(0.0, base + self.rng.gauss(0.0, NOISE[metric]))

    def publish(self) -> None:
        now, lines = time.time(), []  # one time for every sample of the update
        for metric in BASE:
            lines.append(f"# TYPE bench_{metric} gauge")
            lines += [f'bench_{metric}{{svc="{service}"}} {self.value(service, metric, now):.6g}'
                      for service in self.services]
        self.exporter.payload = ("\n".join(lines) + "\n").encode()

    def run(self) -> None:
        while not self.stop.wait(2.0):
            self.publish()


def backfill_history(env: dict[str, str], feed: Feed, port: int, minutes: int,
                     step: int) -> None:
    """Minutes of past samples, labelled exactly as the scrape will label them (one series)."""
    state = env.get("ADAPTIVE_CLUSTER_STATE")
    # promtool: linked by e2e/cluster up
    if not state or not (promtool := Path(state) / "bin" / "promtool").exists() or minutes <= 0:
        log("no history backfill (promtool or a local cluster missing): detectors fit later")
        return
    now = int(time.time()) - 60
    lines = []
    for metric in BASE:
        lines.append(f"# TYPE bench_{metric} gauge")
        for service in feed.services:
            labels = (f'exporter="{feed.exporter.name}",instance="127.0.0.1:{port}",'
                      f'job="exporters",svc="{service}"')
            lines += [f"bench_{metric}{{{labels}}} {feed.value(service, metric, t):.6g} {t}"
                      for t in range(now - minutes * 60, now, step)]
    lines.append("# EOF")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "history.om"
        source.write_text("\n".join(lines) + "\n")
        out = Path(tmp) / "blocks"
        subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source),
                        str(out)], check=True, capture_output=True)
        data = Path(state) / "prometheus" / "data"
        for block in out.iterdir():
            shutil.move(str(block), str(data / block.name))
    log(f"wrote {minutes} min of history ({len(lines):,} samples); Prometheus loads it "
        "within a minute")


def wait_history(env: dict[str, str], feed: Feed, minutes: int) -> None:
    query = (f'count_over_time(bench_load{{exporter="{feed.exporter.name}",'
             f'svc="{feed.services[0]}"}}[{minutes + 5}m])')
    url = f"{env['PROMETHEUS_URL']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=10) as response:
            result = json.load(response)["data"]["result"]
        if result and float(result[0]["value"][1]) >= minutes * 60 / 15 * 0.9:
            log("Prometheus serves the backfilled history")
            return
        time.sleep(5)
    log("Prometheus did not load the backfilled history within 3 minutes; going on")
