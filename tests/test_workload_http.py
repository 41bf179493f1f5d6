"""workload-http, the e2e's test service: its error ratio, latency, readiness and start-up delay
are what its arguments say, and its /metrics is the Prometheus text that healing queries read."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from script_loader import Program, load_workload

http = load_workload("workload_http")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until ``check`` holds; the timeout only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s"
        time.sleep(0.02)


def settings(error_ratio: float = 0.0, latency_ms: float = 0.0,
             startup_seconds: float = 0.0) -> object:
    return http.Settings(error_ratio, latency_ms, startup_seconds, "v-test")


@pytest.mark.parametrize(("ratio", "requests", "errors"), [
    (0.0, 50, 0), (1.0, 50, 50), (0.5, 10, 5), (0.1, 100, 10), (0.25, 7, 1),
])
def test_errors_are_exactly_the_ratio(ratio: float, requests: int, errors: int) -> None:
    state = http.State(settings(error_ratio=ratio))
    codes = [state.begin() for _ in range(requests)]
    assert codes.count(500) == errors
    assert set(codes) <= {200, 500}


@pytest.fixture
def service() -> Iterator[tuple[str, object]]:
    state = http.State(settings(error_ratio=0.5, latency_ms=30))
    server = http.serve(state, 0, "127.0.0.1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def metric_lines(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return [line for line in response.read().decode().splitlines()
                if not line.startswith("#")]


def check_four_requests_counted(lines: list[str]) -> None:
    """Two answered 200 and two 500, each taking 30 ms."""
    assert 'http_requests_total{code="200"} 2' in lines
    assert 'http_requests_total{code="500"} 2' in lines
    assert "http_request_duration_seconds_count 4" in lines
    assert 'http_request_duration_seconds_bucket{le="+Inf"} 4' in lines
    assert 'http_request_duration_seconds_bucket{le="0.005"} 0' in lines  # 30 ms each


def test_metrics_count_requests_by_code_and_time_them(service: tuple[str, object]) -> None:
    url, _ = service
    assert sorted(status(f"{url}/") for _ in range(4)) == [200, 200, 500, 500]
    lines = metric_lines(url)
    check_four_requests_counted(lines)
    total = next(float(line.split()[1]) for line in lines
                 if line.startswith("http_request_duration_seconds_sum"))
    assert total >= 4 * 0.030
    assert "http_requests_in_flight 0" in lines
    assert 'workload_info{version="v-test",error_ratio="0.5"} 1' in lines


def test_in_flight_counts_a_request_being_served() -> None:
    state = http.State(settings(latency_ms=60_000))
    server = http.serve(state, 0, "127.0.0.1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=http._get, args=(f"{url}/",), daemon=True).start()
    wait_for(lambda: "http_requests_in_flight 1" in metric_lines(url), "a request in flight")
    server.shutdown()
    server.server_close()


def check_failed_on_request(url: str) -> None:
    assert status(f"{url}/admin/ready", b"fail") == 200
    assert status(f"{url}/ready") == 503
    assert "workload_ready 0" in metric_lines(url)
    assert status(f"{url}/healthz") == 200  # alive, only not ready


def check_restored_on_request(url: str) -> None:
    assert status(f"{url}/admin/ready", b"ok") == 200
    assert status(f"{url}/ready") == 200


def test_readiness_is_failed_and_restored_on_request(service: tuple[str, object]) -> None:
    url, _ = service
    assert status(f"{url}/ready") == 200
    check_failed_on_request(url)
    check_restored_on_request(url)
    assert status(f"{url}/admin/ready", b"maybe") == 400
    assert status(f"{url}/nowhere") == 404


def test_not_ready_during_the_start_up_delay() -> None:
    assert not http.State(settings(startup_seconds=3600)).is_ready()
    assert http.State(settings(startup_seconds=0)).is_ready()


def test_self_load_sends_requests_until_stopped(service: tuple[str, object]) -> None:
    url, state = service
    stop = threading.Event()
    thread = threading.Thread(target=http.self_load, args=(f"{url}/", 50.0, stop), daemon=True)
    thread.start()
    wait_for(lambda: sum(state.codes.values()) >= 5, "five requests answered")  # type: ignore[attr-defined]
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_self_load_wave_swings_thirty_percent_around_the_rate() -> None:
    assert http.wave_rate(10.0, 0.0, 123.0) == 10.0
    assert http.wave_rate(10.0, 40.0, 10.0) == pytest.approx(13.0)
    assert http.wave_rate(10.0, 40.0, 30.0) == pytest.approx(7.0)
    assert http.wave_rate(10.0, 40.0, 40.0) == pytest.approx(10.0)
    args = http.parse_args(["--self-load=2", "--self-load-wave-seconds=40"])
    assert args.self_load_wave_seconds == 40.0


def test_each_request_is_forwarded_ratio_times_after_the_delay() -> None:
    """A downstream whose load is three times the upstream's, a little later."""
    down = http.State(settings())
    down_server = http.serve(down, 0, "127.0.0.1")
    forward = http.Forwarder(f"http://127.0.0.1:{down_server.server_address[1]}/", 3, 1.0)
    up_server = http.serve(http.State(settings(), forward), 0, "127.0.0.1")
    stop = threading.Event()
    for target in (down_server.serve_forever, up_server.serve_forever):
        threading.Thread(target=target, args=(0.05,), daemon=True).start()
    threading.Thread(target=forward.run, args=(stop,), daemon=True).start()
    try:
        for _ in range(2):
            assert status(f"http://127.0.0.1:{up_server.server_address[1]}/") == 200
        assert len(forward.due) == 2 and not down.codes  # held for the delay
        wait_for(lambda: sum(down.codes.values()) == 6, "three forwards per request")
    finally:
        stop.set()
        for server in (up_server, down_server):
            server.shutdown()
            server.server_close()


def test_options_come_from_flags_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKLOAD_ERROR_RATIO", "0.3")
    monkeypatch.setenv("WORKLOAD_STARTUP_SECONDS", "12")
    args = http.parse_args(["--latency-ms", "40"])
    assert (args.error_ratio, args.startup_seconds, args.latency_ms) == (0.3, 12.0, 40.0)
    assert http.parse_args(["--error-ratio", "0.9"]).error_ratio == 0.9  # a flag wins


@pytest.mark.parametrize(("argv", "env", "message"), [
    pytest.param(["--error-ratio", "1.5"], {}, "must be between 0 and 1", id="ratio-above-one"),
    pytest.param([], {"WORKLOAD_ERROR_RATIO": "-0.1"}, "must be between 0 and 1",
                 id="ratio-from-env"),
    pytest.param(["--latency-ms", "nan"], {}, "must be >= 0", id="nan-latency"),
    pytest.param(["--startup-seconds", "-1"], {}, "must be >= 0", id="negative-start-up"),
    pytest.param(["--port", "http"], {}, "invalid int value", id="port-not-a-number"),
])
def test_bad_settings_are_refused(argv: list[str], env: dict[str, str], message: str,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        http.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_program_serves_until_sigterm() -> None:
    argv = ("--port", "0", "--startup-seconds", "3600", "--error-ratio", "1")
    with Program("workload_http", *argv) as program:
        assert status(f"{program.url}/ready") == 503  # still starting
        assert status(f"{program.url}/") == 500
        assert 'http_requests_total{code="500"} 1' in metric_lines(program.url)
        assert program.stop() == 0
