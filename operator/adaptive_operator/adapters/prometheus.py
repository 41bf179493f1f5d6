"""Prometheus queries through prometheus-api-client: instant ones off the event loop, for the
operator, and range queries (blocking) for history and the backtest command.

Every failure becomes a `MetricError` whose reason (CamelCase) and message go into a status
condition verbatim, so a user sees the PromQL error text or why the value was refused.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adaptive_operator.adapters.telemetry import PROMETHEUS_QUERIES

DEFAULT_TIMEOUT_SECONDS = 5.0
# Range queries (history backfills) in flight at once, across all services: 1,000 services
# starting together must not stampede Prometheus with thousands of 11,000-point queries.
RANGE_CONCURRENCY = 4
POOL_SIZE = 32  # the operator's worker threads (handlers.settings.WORKER_THREADS)


class MetricError(Exception):
    """A metric that could not be read; `reason` is CamelCase, for a condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Sample:
    value: float
    ignored: str | None = None  # what was dropped from the answer, said to the user


_clients: dict[str, PrometheusConnect] = {}
_clients_lock = threading.Lock()


def client(url: str) -> PrometheusConnect:
    """One HTTP session per Prometheus, reused across services (connection pooling)."""
    with _clients_lock:
        found = _clients.get(url)
        if found is None:
            # One quick retry only: the sync loop retries with backoff at its own level.
            retry = Retry(total=1, backoff_factor=0.2)
            found = PrometheusConnect(url=url, disable_ssl=True, timeout=DEFAULT_TIMEOUT_SECONDS,
                                      retry=retry)
            # As many pooled connections as worker threads (the default 10 discards the rest).
            found._session.mount(url, HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE))
            _clients[url] = found
        return found


def _raw_query(url: str, query: str) -> list[dict[str, Any]]:
    PROMETHEUS_QUERIES.labels("instant").inc()
    try:
        result: list[dict[str, Any]] = client(url).custom_query(query)
    except PrometheusApiClientException as err:
        raise MetricError("QueryFailed", f"Prometheus refused the query {query!r}: "
                                         f"{_error_text(err)}") from err
    except requests.exceptions.Timeout as err:
        raise MetricError("PrometheusTimeout", f"Prometheus at {url} did not answer within "
                                               f"{DEFAULT_TIMEOUT_SECONDS:.0f}s") from err
    except requests.exceptions.RequestException as err:
        raise MetricError("PrometheusUnreachable", f"cannot reach Prometheus at {url}: "
                                                   f"{type(err).__name__}") from err
    return result


def _error_text(err: PrometheusApiClientException) -> str:
    """The API's own message (e.g. a PromQL parse error) out of the client's exception text,
    which embeds the response body as a bytes literal: "HTTP Status Code 400 (b'{...}')"."""
    text = str(err)
    start, end = text.find("(b'"), text.rfind("')")
    if start < 0 or end <= start:
        return text
    try:
        body = json.loads(ast.literal_eval(text[start + 1:end + 1]))
    except (ValueError, SyntaxError):
        return text
    return str(body.get("error", text)) if isinstance(body, dict) else text


def to_total(query: str, result: list[dict[str, Any]]) -> Sample:
    """The one number a scaling metric must give: refuse what cannot be trusted."""
    if not result:
        raise MetricError("EmptyResult", f"the query {query!r} returned no series")
    if len(result) > 1:
        raise MetricError("TooManySeries", f"the query {query!r} returned {len(result)} series; "
                                           "it must return one (wrap it in sum(...))")
    raw = result[0].get("value", [None, None])[1]
    try:
        value = float(raw)
    except (TypeError, ValueError) as err:
        raise MetricError("InvalidValue",
                          f"the query {query!r} gave {raw!r}, not a number") from err
    if math.isnan(value) or math.isinf(value):
        raise MetricError("InvalidValue", f"the query {query!r} gave {value}; ignored")
    if value < 0:
        raise MetricError("InvalidValue", f"the query {query!r} gave a negative load {value}")
    return Sample(value)


async def query_total(url: str, query: str) -> Sample:
    result = await asyncio.to_thread(_raw_query, url, query)
    return to_total(query, result)


def to_vector(query: str, result: list[Any]) -> list[dict[str, Any]]:
    """An instant vector (one `{"metric", "value"}` per series): refuse a scalar or a matrix,
    whose samples would be read as the wrong thing."""
    for item in result:
        if not isinstance(item, dict) or "metric" not in item or "value" not in item:
            raise MetricError("NotAVector", f"the query {query!r} did not return an instant "
                                            f"vector (got {str(item)[:80]})")
    return result


async def query_vector(url: str, query: str) -> list[dict[str, Any]]:
    """Every series of an instant query, e.g. one per shard; empty when nothing matched."""
    result = await asyncio.to_thread(_raw_query, url, query)
    return to_vector(query, result)


# --- range queries ------------------------------------------------------------------------


class PrometheusError(Exception):
    """The query could not be run or its answer cannot be used; the message says why."""


@dataclass(frozen=True)
class RangeSeries:
    """One series on the query's step grid: `values[i]` is at `start + i * step` (None = no
    sample)."""

    start: float
    step: float
    values: list[float | None]


def on_grid(samples: Sequence[Sequence[Any]], start: float, end: float, step: float) -> RangeSeries:
    """Place `[timestamp, "value"]` samples on the grid start, start + step, ... <= end; a
    missing or non-finite sample is None (Prometheus omits steps with no data)."""
    count = math.floor((end - start) / step + 1e-9) + 1
    values: list[float | None] = [None] * count
    for stamp, text in samples:
        index = round((float(stamp) - start) / step)
        value = float(text)
        if 0 <= index < count and math.isfinite(value):
            values[index] = value
    return RangeSeries(start, step, values)


def single_series(result: Sequence[dict[str, Any]], query: str) -> Sequence[Sequence[Any]]:
    """The samples of the one series a query must return for a load trace."""
    if len(result) != 1:
        raise PrometheusError(
            f"query {query!r} returned {len(result)} series; it must return exactly one "
            "(aggregate it, e.g. sum(...))"
        )
    samples: Sequence[Sequence[Any]] = result[0].get("values", [])
    return samples


def query_range(url: str, query: str, start: float, end: float, step: float) -> RangeSeries:
    """Run a range query (epoch seconds, step in seconds) and return its one series."""
    PROMETHEUS_QUERIES.labels("range").inc()
    try:
        result = client(url).custom_query_range(
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}s",
        )
    except Exception as err:  # the client raises requests' and its own errors: report any
        raise PrometheusError(f"range query to {url} failed: {_first_line(err)}") from err
    return on_grid(single_series(result, query), start, end, step)


_range_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


async def query_range_bounded(url: str, query: str, start: float, end: float,
                              step: float) -> RangeSeries:
    """`query_range` off the event loop, at most RANGE_CONCURRENCY at a time (per loop)."""
    slots = _range_slots.setdefault(asyncio.get_running_loop(),
                                    asyncio.Semaphore(RANGE_CONCURRENCY))
    async with slots:
        return await asyncio.to_thread(query_range, url, query, start, end, step)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
