#!/usr/bin/env python3
"""workload-http: a test HTTP service whose health is set by its arguments.

    workload-http --port 8080 --error-ratio 0.5 --latency-ms 50 --startup-seconds 10

Paths: ``/`` does the work (waits the latency, then answers 200, or 500 for the error ratio of
requests); ``/metrics`` is Prometheus text; ``/ready`` answers 503 until the start-up delay has
passed, or while readiness is failed; ``/healthz`` always 200; ``POST /admin/ready`` with body
``fail`` or ``ok`` fails or restores readiness. ``--self-load RPS`` sends the service that many
requests per second itself, so that its metrics move without an outside client
(``--self-load-wave-seconds S`` swings that rate 30 % either side over S seconds).
``--forward URL --forward-ratio N --forward-delay-seconds D`` sends N requests to URL, D seconds
after each request to ``/`` (as a queue consumer behind a frontend would): a downstream service
whose load follows this one's, a little later.

Every option can also come from the environment, as ``WORKLOAD_`` and the option in capitals
(``WORKLOAD_ERROR_RATIO=0.5``); a flag wins. Standard library only: it runs in a small image.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Settings:
    error_ratio: float
    latency_ms: float
    startup_seconds: float
    version: str


class Forwarder:
    """Each request served sends `ratio` requests to `url`, `delay` seconds later."""

    def __init__(self, url: str, ratio: int, delay: float) -> None:
        self.url, self.ratio, self.delay = url, ratio, delay
        self.due: deque[float] = deque()  # in order: the delay is the same for every request
        self.ready = threading.Condition()

    def schedule(self) -> None:
        with self.ready:
            self.due.append(time.monotonic() + self.delay)
            self.ready.notify()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.ready:
                wait = self.due[0] - time.monotonic() if self.due else 0.5
                if not self.due or wait > 0:
                    self.ready.wait(min(wait, 0.5))
                    continue
                self.due.popleft()
            for _ in range(self.ratio):
                threading.Thread(target=_get, args=(self.url,), daemon=True).start()


@dataclass
class State:
    """Counters and switches shared by the handler threads (one lock guards them all)."""

    settings: Settings
    forward: Forwarder | None = None
    started: float = field(default_factory=time.monotonic)
    ready_failed: bool = False
    requests: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    duration_sum: float = 0.0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> int:
        """Count a request in flight; the status it will answer (errors spread exactly evenly)."""
        with self.lock:
            self.in_flight += 1
            number = self.requests
            self.requests += 1
        ratio = self.settings.error_ratio
        failed = math.floor((number + 1) * ratio) > math.floor(number * ratio)
        return 500 if failed else 200

    def end(self, code: int, seconds: float) -> None:
        with self.lock:
            self.in_flight -= 1
            self.codes[code] = self.codes.get(code, 0) + 1
            self.duration_sum += seconds
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[index] += 1

    def is_ready(self) -> bool:
        starting = time.monotonic() - self.started < self.settings.startup_seconds
        return not starting and not self.ready_failed

    def metrics(self) -> str:
        with self.lock:
            return render_metrics(self)


def render_metrics(state: State) -> str:
    """The Prometheus text exposition of the state (call with the lock held)."""
    lines = [
        "# HELP http_requests_total Requests served, by status code.",
        "# TYPE http_requests_total counter",
        *(f'http_requests_total{{code="{code}"}} {count}'
          for code, count in sorted(state.codes.items())),
        "# HELP http_request_duration_seconds Time to answer a request.",
        "# TYPE http_request_duration_seconds histogram",
        *(f'http_request_duration_seconds_bucket{{le="{bound}"}} {count}'
          for bound, count in zip(BUCKETS, state.bucket_counts, strict=True)),
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {sum(state.codes.values())}',
        f"http_request_duration_seconds_sum {state.duration_sum}",
        f"http_request_duration_seconds_count {sum(state.codes.values())}",
        "# HELP http_requests_in_flight Requests being served now.",
        "# TYPE http_requests_in_flight gauge",
        f"http_requests_in_flight {state.in_flight}",
        "# HELP workload_ready Whether /ready answers 200.",
        "# TYPE workload_ready gauge",
        f"workload_ready {int(state.is_ready())}",
        "# HELP workload_info The workload's version and settings.",
        "# TYPE workload_info gauge",
        f'workload_info{{version="{state.settings.version}",'
        f'error_ratio="{state.settings.error_ratio}"}} 1',
    ]
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    state: State  # set on the subclass that `serve` makes
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self.reply(200, self.state.metrics(), "text/plain; version=0.0.4")
        elif self.path == "/ready":
            ready = self.state.is_ready()
            self.reply(200 if ready else 503, "ready\n" if ready else "not ready\n")
        elif self.path == "/healthz":
            self.reply(200, "ok\n")
        elif self.path.split("?")[0] == "/":
            self.work()
        else:
            self.reply(404, "not found\n")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).strip()
        if self.path != "/admin/ready" or body not in (b"fail", b"ok"):
            self.reply(400, "POST /admin/ready with body fail or ok\n")
            return
        with self.state.lock:
            self.state.ready_failed = body == b"fail"
        self.reply(200, f"readiness {body.decode()}\n")

    def work(self) -> None:
        started = time.monotonic()
        code = self.state.begin()
        try:
            time.sleep(self.state.settings.latency_ms / 1000)
        finally:
            # Counted before the answer goes out: a scrape right after it sees the request.
            self.state.end(code, time.monotonic() - started)
        if self.state.forward is not None:
            self.state.forward.schedule()
        self.reply(code, "ok\n" if code == 200 else "injected error\n")

    def reply(self, code: int, text: str, content_type: str = "text/plain") -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # A client that gave up waiting (its timeout) has nothing left to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a request log line per scrape and probe would drown the pod's log."""


def serve(state: State, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def wave_rate(rps: float, wave_seconds: float, elapsed: float) -> float:
    """``rps`` flat, or swinging 30 % either side of it over ``wave_seconds`` (a load that moves,
    so a downstream's relation to it can be learned)."""
    if wave_seconds <= 0:
        return rps
    return rps * (1.0 + 0.3 * math.sin(2 * math.pi * elapsed / wave_seconds))


def self_load(url: str, rps: float, stop: threading.Event, wave_seconds: float = 0.0) -> None:
    """Request ``url`` at ``rps`` per second until ``stop`` (errors are the point: ignored)."""
    started = next_at = time.monotonic()
    while not stop.is_set():
        threading.Thread(target=_get, args=(url,), daemon=True).start()
        next_at += 1.0 / wave_rate(rps, wave_seconds, next_at - started)
        stop.wait(max(0.0, next_at - time.monotonic()))


def _get(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
    except OSError:
        pass  # a 500 is an HTTPError (an OSError): expected with an error ratio


def _env(name: str, default: str) -> str:
    return os.environ.get("WORKLOAD_" + name.upper().replace("-", "_"), default)


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="workload-http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=_env("port", "8080"))
    parser.add_argument("--error-ratio", type=_ratio, default=_env("error-ratio", "0"),
                        help="share of requests to / that answer 500 (0..1)")
    parser.add_argument("--latency-ms", type=_non_negative, default=_env("latency-ms", "0"),
                        help="time / takes to answer")
    parser.add_argument("--startup-seconds", type=_non_negative,
                        default=_env("startup-seconds", "0"), help="not ready for this long")
    parser.add_argument("--self-load", type=_non_negative, default=_env("self-load", "0"),
                        metavar="RPS", help="requests per second the service sends itself")
    parser.add_argument("--self-load-wave-seconds", type=_non_negative,
                        default=_env("self-load-wave-seconds", "0"), metavar="S",
                        help="swing the self-load 30%% either side of RPS over S seconds")
    parser.add_argument("--version-label", default=_env("version-label", "v1"),
                        help="reported in workload_info")
    parser.add_argument("--forward", default=_env("forward", ""), metavar="URL",
                        help="a downstream URL that each request to / is forwarded to")
    parser.add_argument("--forward-ratio", type=int, default=_env("forward-ratio", "1"),
                        metavar="N", help="requests sent to --forward per request served")
    parser.add_argument("--forward-delay-seconds", type=_non_negative,
                        default=_env("forward-delay-seconds", "0"),
                        help="how long after a request its forwards are sent")
    # argparse converts string defaults with `type` too: values from the environment are checked.
    args = parser.parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.error_ratio, args.latency_ms, args.startup_seconds,
                        args.version_label)
    forward = (Forwarder(args.forward, args.forward_ratio, args.forward_delay_seconds)
               if args.forward else None)
    server = serve(State(settings, forward), args.port)
    stop = threading.Event()
    if forward is not None:
        threading.Thread(target=forward.run, args=(stop,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if args.self_load > 0:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        threading.Thread(target=self_load, args=(url, args.self_load, stop,
                                                 args.self_load_wave_seconds),
                         daemon=True).start()
    print(f"workload-http {args.version_label} on :{server.server_address[1]} "
          f"error_ratio={args.error_ratio} latency_ms={args.latency_ms} "
          f"startup_seconds={args.startup_seconds} self_load={args.self_load}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
