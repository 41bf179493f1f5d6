"""What the operator accepts from a Prometheus, against real sockets: an overall deadline, a size
cap, no redirect, refusals reported by status and a short reason (never the body), credentials
sent but never printed, TLS verified unless the endpoint opts out."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adaptive_operator.adapters import prometheus, prometheus_http
from adaptive_operator.adapters.prometheus_http import Endpoint, basic_header, redact

Reply = Callable[[http.server.BaseHTTPRequestHandler], None]
OK = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [0, "3"]}]}}).encode()


class Server:
    """A one-handler HTTP server on 127.0.0.1 that records the requests' headers."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.seen.append(dict(self.headers))
                reply(self)

            do_GET = do_POST

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(reply: Reply, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(reply, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    def reply(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return reply


def failure(target: Endpoint | str) -> prometheus.MetricError:
    with pytest.raises(prometheus.MetricError) as caught:
        prometheus._raw_query(target, "up")
    return caught.value


def test_a_server_dripping_bytes_is_cut_at_the_overall_deadline(
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    def drip(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(OK)))
        handler.end_headers()
        for byte in OK[:20]:  # each byte well within a per-read timeout, the whole far past
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.2)
    monkeypatch.setattr(prometheus, "DEFAULT_TIMEOUT_SECONDS", 1.0)
    error = failure(serve(drip).url)
    assert error.reason == "PrometheusTimeout"


def test_a_redirect_is_not_followed(serve: Callable[..., Server]) -> None:
    elsewhere = serve(answer(200, OK))
    error = failure(serve(answer(302, b"", {"Location": elsewhere.url + "/api/v1/query"})).url)
    assert error.reason == "PrometheusUnreachable"
    assert "HTTP 302" in error.message and "not followed" in error.message
    assert elsewhere.seen == []


def test_an_error_reports_the_status_never_the_body(serve: Callable[..., Server]) -> None:
    error = failure(serve(answer(500, b"<html>internal-secret-page " * 50)).url)
    assert error.reason == "QueryFailed"
    assert "HTTP 500" in error.message
    assert "internal-secret-page" not in error.message


def test_a_refusal_gives_prometheus_own_short_reason(serve: Callable[..., Server]) -> None:
    said = {"status": "error", "errorType": "bad_data", "error": "parse error:\n\x07 " + "x" * 500}
    error = failure(serve(answer(400, json.dumps(said).encode())).url)
    assert error.reason == "QueryFailed"
    assert "HTTP 400: parse error: " in error.message
    assert "\x07" not in error.message and "\n" not in error.message
    assert len(error.message) < 300


def test_an_answer_over_the_cap_is_refused(serve: Callable[..., Server],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_http, "MAX_RESPONSE_BYTES", 1000)

    def chunked(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(10):  # no Content-Length: the cap is counted while reading
            handler.wfile.write(b"200\r\n" + b" " * 512 + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")
    assert failure(serve(chunked).url).reason == "ResponseTooLarge"
    assert failure(serve(answer(200, b" " * 2000)).url).reason == "ResponseTooLarge"


@pytest.mark.parametrize("body", [b'{"status": "success"}', b"[]", b"not json",
                                  b'{"status": "success", "data": {}}'])
def test_an_answer_without_data_is_refused_cleanly(serve: Callable[..., Server],
                                                   body: bytes) -> None:
    assert failure(serve(answer(200, body)).url).reason == "InvalidAnswer"


def test_a_range_answer_without_data_is_refused_cleanly(serve: Callable[..., Server]) -> None:
    with pytest.raises(prometheus.PrometheusError, match="without data"):
        prometheus.raw_range(serve(answer(200, b'{"status": "success"}')).url, "up", 0, 10, 5)


def test_credentials_are_sent_and_never_printed(serve: Callable[..., Server]) -> None:
    server = serve(answer(503, b"down"))
    endpoint = Endpoint(server.url.replace("//", "//alice:hunter2@"), headers=(
        basic_header("bob", "s3cret"), ("X-Scope-OrgID", "team-a")))
    error = failure(endpoint)
    assert server.seen[0]["X-Scope-OrgID"] == "team-a"
    assert server.seen[0]["Authorization"].startswith("Basic ")
    for text in (error.message, str(endpoint), repr(endpoint)):
        assert "hunter2" not in text and "s3cret" not in text and "team-a" not in text
    assert "HTTP 503" in error.message and "***@127.0.0.1" in str(endpoint)


def test_redact_hides_user_and_password() -> None:
    assert redact("https://u:p@prom:9090/x") == "https://***@prom:9090/x"
    assert redact("http://prom:9090") == "http://prom:9090"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def test_tls_is_verified_unless_told_otherwise(serve: Callable[..., Server],
                                                certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    url = serve(answer(200, OK), tls=context).url
    error = failure(url)
    assert error.reason == "PrometheusUnreachable" and "not verified" in error.message
    trusted = Endpoint(url, ca_pem=cert.read_text())
    assert prometheus._raw_query(trusted, "up")[0]["value"] == [0, "3"]
    assert prometheus._raw_query(Endpoint(url, insecure_skip_verify=True), "up")


def test_a_bad_ca_bundle_is_said_plainly() -> None:
    error = failure(Endpoint("https://127.0.0.1:1", ca_pem="not a certificate"))
    assert error.reason == "InvalidCABundle"


def _io_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "prometheus-io")


def test_a_request_without_a_loop_leaves_no_thread(serve: Callable[..., Server]) -> None:
    url, before = serve(answer(200, OK)).url, _io_threads()
    assert prometheus._raw_query(url, "up")[0]["value"] == [0, "3"]
    assert _io_threads() == before


def test_requests_on_one_loop_share_its_thread_until_it_is_closed(
        serve: Callable[..., Server]) -> None:
    url, before, io = serve(answer(200, OK)).url, _io_threads(), prometheus_http.IoLoop()
    instant, ranged = prometheus.runners(io)
    try:
        instant(url, "up")
        ranged(url, "up", 0.0, 10.0, 5.0)
        assert _io_threads() == before + 1
    finally:
        io.close()
    assert _io_threads() == before
