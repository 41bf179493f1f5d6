"""`adaptive-operator explain`: what it prints from a service's status and Prometheus."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from adaptive_operator.cli import main
from adaptive_operator.commands import explain
from adaptive_operator.commands.explain_render import plot

BODY: dict[str, Any] = {
    "metadata": {"namespace": "shop", "name": "api"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
             "maxReplicas": 10, "syncPeriodSeconds": 15,
             "metrics": [{"name": "rps", "query": "sum(rate(req[1m]))", "targetPerReplica": 10}]},
    "status": {
        "currentReplicas": 4, "desiredReplicas": 5,
        "lastDecision": {"time": "2026-12-03T21:00:00Z", "replicas": 5, "reason": "ScaleUp",
                         "message": "the forecast asks for at least 5",
                         "metrics": [{"name": "rps", "value": 38.0, "targetPerReplica": 10,
                                      "proposedReplicas": 4}]},
        "forecast": {"model": "HoltWinters", "backtestMase": 0.7, "reliable": True,
                     "reason": "forecast error 0.80x seasonal naive's", "metric": "rps",
                     "lookAheadSeconds": 75, "lookAheadSource": "learned from 3 pods",
                     "forecast": [{"offsetSeconds": 75, "p50": 44, "pHigh": 49}]},
        "coupling": {"summary": "frontend: Trusted", "reason": "coupled error 0.40x",
                     "upstreams": [{"service": "frontend", "metric": "rps", "ratio": 3,
                                    "lagSeconds": 30}]},
        "healing": {"state": {"reason": "Healthy", "message": "nothing to do"},
                    "lastVerdict": {"score": 0.31, "isAnomaly": False},
                    "lastAction": {"action": "EvictPods", "reason": "UnhealthyPods",
                                   "outcome": "Helped", "time": "2026-12-03T20:00:00Z"},
                    "ledger": {"total": 1, "lastHour": 0, "byOutcome": {"Helped": 1}}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Scaling",
                        "message": "ok"}],
    },
}


class Prometheus(BaseHTTPRequestHandler):
    queries: list[str] = []

    def do_GET(self) -> None:
        params = parse_qs(urlparse(self.path).query)
        query, start = params["query"][0], float(params["start"][0])
        Prometheus.queries.append(query)
        values = [[start + 15 * i, str(10 + i)] for i in range(5)]
        body = {"status": "success", "data": {"resultType": "matrix",
                                              "result": [{"metric": {}, "values": values}]}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(explain, "read_object", lambda config, ns, name: BODY)
    code = main(["explain", "shop/api", "--rows", "5", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_shows_decision_forecast_guard_coupling_healing_and_a_plot(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        prometheus: str) -> None:
    Prometheus.queries = []
    code, out, _ = run(monkeypatch, capsys, "--prometheus-url", prometheus)
    assert code == 0
    for text in ("Deployment api (apps/v1)", "current 4, desired 5",
                 "ScaleUp -> 5 replicas", "input rps: value 38.0 at 10 per replica -> 4",
                 "model HoltWinters", "guard: trusted: forecast error 0.80x",
                 "learned from 3 pods", "frontend: Trusted", "ratio 3, lag 30 s",
                 "anomaly score 0.31", "last action EvictPods (UnhealthyPods): Helped",
                 "Ready=True Scaling", "* load", "# capacity", "o forecast"):
        assert text in out, text
    assert Prometheus.queries == [
        "sum(rate(req[1m]))", 'adaptive_ready_replicas{namespace="shop",name="api"} * 10',
        'adaptive_forecast_value{namespace="shop",name="api",metric="rps",quantile="0.5"} '
        "offset 75s"]


def test_an_unreachable_prometheus_leaves_out_the_plot_only(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, _ = run(monkeypatch, capsys, "--prometheus-url", closed)
    assert code == 0 and "ScaleUp -> 5 replicas" in out
    assert "not shown (range query to" in out


def test_an_unreachable_cluster_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A refused connection (or a timed-out one) is urllib3's error, not an OSError. In a
    process of its own: loading a kubeconfig sets the client's default configuration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": closed}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    done = subprocess.run([sys.executable, "-m", "adaptive_operator", "explain", "shop/api",
                           "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "cannot reach the cluster" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["explain", "api"], "must be NAMESPACE/NAME", id="no-namespace"),
    pytest.param(["explain", "Shop/api"], "must be NAMESPACE/NAME", id="not-a-name"),
    pytest.param(["explain", "a/b", "--rows", "1"], "--rows", id="too-few-rows"),
])
def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str], args: list[str],
                                   message: str) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_bare_service_explains_what_is_off() -> None:
    from adaptive_operator.commands.explain_render import explain as render

    text = render({"metadata": {}, "spec": {}}, None, "no Prometheus URL")
    assert "Last decision: none yet" in text and "predictive scaling is off" in text
    assert "Healing: off" in text and "not shown (no Prometheus URL)" in text


def test_the_plot_scales_to_the_largest_value_and_marks_gaps_as_blank() -> None:
    lines = plot({"load": [0.0, 5.0, None, 10.0], "capacity": [10.0, 10.0, 10.0, 10.0]},
                 height=3)
    assert lines[0] == "        10 |###*"  # the load covers the capacity where they meet
    assert lines[1] == "           | *  "
    assert lines[2] == "         0 |*   "
    assert plot({"load": [None]}) == ["(no data to plot)"]
