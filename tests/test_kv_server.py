"""kv-server, the ShardSet e2e shards' key-value server: its store survives a restart, and its
HTTP interface does what kv-migrate and the e2e's routing client rely on."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from script_loader import Program, load_workload

kv = load_workload("kv_server")


def test_store_keeps_acknowledged_writes_across_a_restart(tmp_path: Path) -> None:
    store = kv.Store(tmp_path)
    store.put("a", b"1")
    store.put("b", b"2")
    store.put("a", b"3")
    assert store.delete("b") is True
    store.close()
    again = kv.Store(tmp_path)
    assert again.keys() == ["a"]
    assert again.get("a") == b"3"
    # Compacted at start: one line per live key.
    assert len((tmp_path / kv.LOG_NAME).read_text().splitlines()) == 1
    again.close()


def test_store_ignores_a_write_torn_by_a_crash(tmp_path: Path) -> None:
    store = kv.Store(tmp_path)
    store.put("kept", b"v")
    store.close()
    with (tmp_path / kv.LOG_NAME).open("a") as log:
        log.write('{"put": "torn", "val')
    again = kv.Store(tmp_path)
    assert again.keys() == ["kept"]
    again.close()


def test_conditional_delete_refuses_a_changed_value(tmp_path: Path) -> None:
    store = kv.Store(tmp_path)
    store.put("k", b"old")
    tag = kv.etag(b"old")
    store.put("k", b"new")
    assert store.delete("k", tag) is False
    assert store.get("k") == b"new"
    assert store.delete("k", kv.etag(b"new")) is True
    assert store.delete("k") is None
    store.close()


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    store = kv.Store(tmp_path)
    server = kv.serve(store, 0, "127.0.0.1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    store.close()


def call(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


@pytest.mark.parametrize("key", ["plain", "user:{42}:cart", "a/b?c=d#e", "ключ", " spaced "])
def test_put_get_delete_any_key(base_url: str, key: str) -> None:
    url = f"{base_url}/keys/{quote(key, safe='')}"
    assert call(url, "PUT", b"value")[0] == 204
    status, body, headers = call(url)
    assert (status, body, headers["ETag"]) == (200, b"value", kv.etag(b"value"))
    assert json.loads(call(f"{base_url}/keys")[1]) == [key]
    assert call(url, "DELETE")[0] == 204
    assert call(url)[0] == 404
    assert call(url, "DELETE")[0] == 404


def test_delete_with_a_stale_etag_is_refused(base_url: str) -> None:
    url = f"{base_url}/keys/k"
    call(url, "PUT", b"one")
    tag = call(url)[2]["ETag"]
    call(url, "PUT", b"two")
    assert call(url, "DELETE", headers={"If-Match": tag})[0] == 412
    assert call(url)[1] == b"two"


@pytest.mark.parametrize(("path", "method", "code"), [
    pytest.param("/keys/", "GET", 400, id="empty-key"),
    pytest.param("/keys/%ff", "GET", 400, id="not-utf8"),
    pytest.param("/keys/" + "x" * 1025, "GET", 400, id="key-too-long"),
    pytest.param("/nowhere", "GET", 404, id="unknown-path"),
    pytest.param("/nowhere", "DELETE", 404, id="unknown-path-delete"),
])
def test_bad_requests_get_clear_errors(base_url: str, path: str, method: str, code: int) -> None:
    assert call(base_url + path, method)[0] == code


@pytest.mark.parametrize(("length", "code"), [
    pytest.param(None, 411, id="no-length"),  # urllib would send Content-Length: 0
    pytest.param(kv.MAX_VALUE_BYTES + 1, 413, id="too-large"),
])
def test_put_without_a_length_or_too_large_is_refused(base_url: str, length: int | None,
                                                      code: int) -> None:
    connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=10)
    connection.putrequest("PUT", "/keys/k")
    if length is not None:
        connection.putheader("Content-Length", str(length))
    connection.endheaders()  # no body: the server answers from the headers alone
    response = connection.getresponse()
    assert (response.status, response.getheader("Connection")) == (code, "close")
    connection.close()
    assert call(f"{base_url}/keys/k")[0] == 404


def test_probes_and_metrics(base_url: str) -> None:
    assert call(f"{base_url}/ready")[0] == 200
    assert call(f"{base_url}/healthz")[0] == 200
    call(f"{base_url}/keys/a", "PUT", b"1")
    call(f"{base_url}/keys/b", "PUT", b"2")
    text = call(f"{base_url}/metrics")[1].decode()
    assert "kv_keys 2" in text.splitlines()
    assert 'kv_requests_total{method="PUT",code="204"} 2' in text.splitlines()


def test_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        kv.main(["--port", "eighty"])
    assert exit_info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_the_program_stops_on_sigterm_and_restarts_with_its_data(tmp_path: Path) -> None:
    with Program("kv_server", "--port", "0", "--data-dir", str(tmp_path)) as program:
        assert call(f"{program.url}/keys/kept", "PUT", b"value")[0] == 204
        assert program.stop() == 0
    with Program("kv_server", "--port", "0", "--data-dir", str(tmp_path)) as again:
        assert call(f"{again.url}/keys/kept")[1] == b"value"
        assert again.stop() == 0
