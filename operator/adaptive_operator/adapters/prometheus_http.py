"""HTTP to Prometheus, with the limits a shared operator needs (aiohttp, on one I/O thread).

Every request has an overall deadline (connect, headers and body together: a server dripping
one byte at a time is cut at it), a cap on the answer's size, TLS verified unless the endpoint
opts out, and no redirect followed. Errors say the HTTP status and a short sanitised reason,
never the body; credentials (headers, `user:pass@` in a URL) never appear in a message.

Callers are blocking (worker threads, the CLI), so requests run on an event loop in a daemon
thread that owns the connection pool: the operator's one `IoLoop` (`run` builds it), else one
made for the request and closed after it (a command's few queries).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import aiohttp

POOL_SIZE = 64  # the operator's worker threads (handlers.settings.WORKER_THREADS)
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a day of 50 grouped series at 15 s is ~10 MiB
REASON_CHARS = 200  # a refusal's own words are cut to this
GET_LIMIT = 4000  # characters of form sent in a URL; longer queries (many pods) are POSTed


@dataclass(frozen=True)
class Endpoint:
    """A Prometheus and how to reach it. Hashable: answers are shared per endpoint, so two
    services share an answer only when they send the same credentials."""

    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"Endpoint({redact(self.url)!r}, headers={len(self.headers)})"


def endpoint_of(target: Endpoint | str) -> Endpoint:
    return target if isinstance(target, Endpoint) else Endpoint(target)


def redact(url: str) -> str:
    """The URL as it may be printed: without `user:pass@`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def basic_header(username: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


class HttpError(Exception):
    """A request that gave no usable answer; `reason` is CamelCase, for a condition, and
    `refused` says Prometheus answered with an error (the query's fault, not its being away)."""

    def __init__(self, reason: str, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.reason, self.message, self.refused = reason, message, refused


def sanitised(text: str) -> str:
    """Printable, on one line, short: what a refusal may put in a condition."""
    flat = re.sub(r"\s+", " ", "".join(c if c.isprintable() else " " for c in text)).strip()
    return flat if len(flat) <= REASON_CHARS else flat[:REASON_CHARS - 3] + "..."


@lru_cache(maxsize=64)
def _tls(ca_pem: str | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    if ca_pem is None:
        return True  # aiohttp's default: verified against the system's CAs
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as err:
        raise HttpError("InvalidCABundle", "the CA bundle is not valid PEM") from err
    return context


class IoLoop:
    """One event loop in a daemon thread, with its connection pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None

    def run(self, work: Coroutine[Any, Any, Any], deadline: float) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_serve, args=(self._loop,), daemon=True,
                                                name="prometheus-io")
                self._thread.start()
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:  # the request's own deadline ends it first; this only guards a stuck loop
            return future.result(timeout=deadline + 5.0)
        except TimeoutError as err:
            future.cancel()
            raise HttpError("PrometheusTimeout", "no answer within the deadline") from err

    def close(self) -> None:
        """Close the pool (aiohttp warns about a session left open) and end the thread."""
        with self._lock:
            loop, self._loop, thread, self._thread = self._loop, None, self._thread, None
        if loop is None or thread is None:
            return
        if self._session is not None:
            # A stuck loop is stopped all the same (and a request's own error kept).
            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(self._session.close(), loop).result(timeout=2.0)
            self._session = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=2.0)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE), trust_env=False)
        return self._session


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


def post_form(endpoint: Endpoint, path: str, form: dict[str, str], deadline: float,
              io: IoLoop | None = None) -> Any:
    """Send a form to the API (POSTed when too long for a URL) and return the answer's `data`;
    on `io`, else on a loop of its own, closed after the request."""
    tls = _tls(endpoint.ca_pem, endpoint.insecure_skip_verify)
    if io is not None:
        return io.run(_post(io, endpoint, path, form, deadline, tls), deadline)
    own = IoLoop()
    try:
        return own.run(_post(own, endpoint, path, form, deadline, tls), deadline)
    finally:
        own.close()


async def _post(io: IoLoop, endpoint: Endpoint, path: str, form: dict[str, str],
                deadline: float, tls: ssl.SSLContext | bool) -> Any:
    url, headers = _split_userinfo(endpoint)
    where = redact(endpoint.url)
    try:
        # GET while the query fits a URL comfortably (what most proxies expect), else POST.
        small = len(urlencode(form)) <= GET_LIMIT
        async with io.session().request(
                "GET" if small else "POST", url.rstrip("/") + path,
                params=form if small else None, data=None if small else form, headers=headers,
                ssl=tls, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=deadline)) as response:
            body = await _capped(response, where)
            status, phrase = response.status, response.reason or ""
    except TimeoutError as err:
        raise HttpError("PrometheusTimeout", f"Prometheus at {where} did not answer within "
                                             f"{deadline:g}s") from err
    except aiohttp.ClientConnectorCertificateError as err:
        raise HttpError("PrometheusUnreachable", f"cannot reach Prometheus at {where}: its TLS "
                                                 "certificate was not verified") from err
    except aiohttp.ClientError as err:
        raise HttpError("PrometheusUnreachable", f"cannot reach Prometheus at {where}: "
                                                 f"{type(err).__name__}") from err
    return _data(where, status, phrase, body)


def _split_userinfo(endpoint: Endpoint) -> tuple[str, dict[str, str]]:
    """The URL without `user:pass@`, which becomes basic auth unless a header already says."""
    headers = dict(endpoint.headers)
    parts = urlsplit(endpoint.url)
    if parts.username is None:
        return endpoint.url, headers
    if not any(name.lower() == "authorization" for name in headers):
        name, value = basic_header(unquote(parts.username), unquote(parts.password or ""))
        headers[name] = value
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), headers


async def _capped(response: aiohttp.ClientResponse, where: str) -> bytes:
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise _too_large(where)
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large(where)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(where: str) -> HttpError:
    return HttpError("ResponseTooLarge", f"Prometheus at {where} answered more than "
                                         f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; refused")


def _data(where: str, status: int, phrase: str, body: bytes) -> Any:
    """The answer's `data`, or an error with the status and Prometheus' own short reason."""
    if 300 <= status < 400:
        raise HttpError("PrometheusUnreachable", f"Prometheus at {where} answered HTTP {status} "
                                                 "(a redirect: not followed)")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status >= 400:
        said = answer.get("error") if isinstance(answer, dict) else None
        why = sanitised(said) if isinstance(said, str) else sanitised(phrase)
        raise HttpError("QueryFailed", f"HTTP {status}: {why}", refused=status in (400, 422))
    if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
        raise HttpError("InvalidAnswer", f"Prometheus at {where} answered without data "
                                         "(not a Prometheus query API answer)")
    return answer["data"]
