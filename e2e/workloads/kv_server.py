#!/usr/bin/env python3
"""kv-server: a tiny key-value server for a ShardSet's shards, persisted under a data folder.

    kv-server --port 8080 --data-dir /data

HTTP: ``GET /keys`` lists the keys (a JSON array); ``GET /keys/KEY`` answers the value (with an
``ETag``) or 404; ``PUT /keys/KEY`` stores the body; ``DELETE /keys/KEY`` removes it (404 when
absent). ``If-Match: ETAG`` makes a DELETE conditional (412 when the value changed since), which
lets a migration delete only what it copied. KEY is percent-encoded UTF-8. ``/ready``,
``/healthz`` and ``/metrics`` (Prometheus text) are there for probes and scrapes.

Every change is appended to ``kv.log`` and flushed to disk before the answer, so a restarted
server has every acknowledged write; the log is compacted at start. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20
LOG_NAME = "kv.log"


def etag(value: bytes) -> str:
    return '"' + hashlib.sha256(value).hexdigest()[:16] + '"'


class Store:
    """The keys in memory; every change in an append-only log, replayed and compacted at start."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOG_NAME
        self.data: dict[str, bytes] = {}
        self.lock = threading.Lock()
        if self.path.exists():
            self._replay()
        self._compact()
        self.log = self.path.open("a", encoding="utf-8")

    def _replay(self) -> None:
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a write torn by a crash is the last line, and was never acknowledged
            if "put" in entry:
                self.data[entry["put"]] = base64.b64decode(entry["value"])
            else:
                self.data.pop(entry["delete"], None)

    def _compact(self) -> None:
        tmp = self.path.with_name(LOG_NAME + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for key, value in self.data.items():
                out.write(_put_line(key, value))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)

    def _append(self, line: str) -> None:
        self.log.write(line)
        self.log.flush()
        os.fsync(self.log.fileno())

    def keys(self) -> list[str]:
        with self.lock:
            return sorted(self.data)

    def get(self, key: str) -> bytes | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        with self.lock:
            self._append(_put_line(key, value))
            self.data[key] = value

    def delete(self, key: str, if_match: str | None = None) -> bool | None:
        """None when absent; False when ``if_match`` is not the current ETag; True when deleted."""
        with self.lock:
            if key not in self.data:
                return None
            if if_match is not None and etag(self.data[key]) != if_match:
                return False
            self._append(json.dumps({"delete": key}) + "\n")
            del self.data[key]
            return True

    def close(self) -> None:
        self.log.close()


def _put_line(key: str, value: bytes) -> str:
    return json.dumps({"put": key, "value": base64.b64encode(value).decode()}) + "\n"


class Handler(BaseHTTPRequestHandler):
    store: Store  # set on the subclass that `serve` makes
    counts: dict[tuple[str, int], int]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/keys":
            self.reply(200, json.dumps(self.store.keys()).encode(), "application/json")
        elif self.path in ("/ready", "/healthz"):
            self.reply(200, b"ok\n")
        elif self.path == "/metrics":
            self.reply(200, self.metrics().encode(), "text/plain; version=0.0.4")
        elif (key := self.key()) is not None:
            value = self.store.get(key)
            if value is None:
                self.reply(404, b"no such key\n")
            else:
                self.reply(200, value, "application/octet-stream", {"ETag": etag(value)})

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or -1)
        if not 0 <= length <= MAX_VALUE_BYTES:
            # The body is not read, so the connection cannot carry another request.
            self.reply(411 if length < 0 else 413, b"a Content-Length up to 1 MiB is needed\n",
                       headers={"Connection": "close"})
            return
        value = self.rfile.read(length)
        key = self.key()
        if key is None:
            return
        self.store.put(key, value)
        self.reply(204, b"", headers={"ETag": etag(value)})

    def do_DELETE(self) -> None:
        key = self.key()
        if key is None:
            return
        deleted = self.store.delete(key, self.headers.get("If-Match"))
        codes = {None: (404, b"no such key\n"), False: (412, b"the value changed\n"),
                 True: (204, b"")}
        self.reply(*codes[deleted])

    def key(self) -> str | None:
        """The request's key, or None after answering 400/404 for a bad path or key."""
        if not self.path.startswith("/keys/"):
            self.reply(404, b"not found\n")
            return None
        try:
            key = unquote(self.path[len("/keys/"):], errors="strict")
        except UnicodeDecodeError:
            key = ""
        if not key or len(key.encode()) > MAX_KEY_BYTES:
            self.reply(400, b"a key is 1 to 1024 bytes of percent-encoded UTF-8\n")
            return None
        return key

    def reply(self, code: int, data: bytes, content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        self.counts[(self.command, code)] = self.counts.get((self.command, code), 0) + 1
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def metrics(self) -> str:
        lines = ["# TYPE kv_keys gauge", f"kv_keys {len(self.store.keys())}",
                 "# TYPE kv_requests_total counter"]
        lines += [f'kv_requests_total{{method="{method}",code="{code}"}} {count}'
                  for (method, code), count in sorted(self.counts.items())]
        return "\n".join(lines) + "\n"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: probes and scrapes would drown the pod's log."""


def serve(store: Store, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    # The counts dict is shared by the handler threads; a lost increment only blurs a metric.
    handler = type("BoundHandler", (Handler,), {"store": store, "counts": {}})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kv-server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", type=Path, default=Path("/data"))
    args = parser.parse_args(argv)
    store = Store(args.data_dir)
    server = serve(store, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"kv-server on :{server.server_address[1]}, {len(store.keys())} keys in "
          f"{args.data_dir}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
