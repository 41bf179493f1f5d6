"""Prometheus queries through prometheus-api-client: instant ones off the event loop, for the
operator, and range queries (blocking) for history and the backtest command.

Every failure becomes a `MetricError` whose reason (CamelCase) and message go into a status
condition verbatim, so a user sees the PromQL error text or why the value was refused.
"""

from __future__ import annotations

import ast
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adaptive_operator.adapters import workers
from adaptive_operator.adapters.telemetry import PROMETHEUS_QUERIES

DEFAULT_TIMEOUT_SECONDS = 5.0
POOL_SIZE = 64  # the operator's worker threads (handlers.settings.WORKER_THREADS)


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
    except requests.exceptions.RequestException as err:
        raise _transport_error(url, err) from err
    return result


def _transport_error(url: str, err: requests.exceptions.RequestException) -> MetricError:
    """Slow (connected, no answer in time) or away (no connection): with a retry configured,
    requests reports a read timeout as a ConnectionError wrapping urllib3's MaxRetryError, so
    the reason is looked for inside."""
    inner = err.args[0] if err.args else None
    reason = getattr(inner, "reason", None)
    read_timeout = isinstance(reason, urllib3.exceptions.ReadTimeoutError)
    if isinstance(err, requests.exceptions.ReadTimeout) or read_timeout:
        return MetricError("PrometheusTimeout", f"Prometheus at {url} did not answer within "
                                                f"{DEFAULT_TIMEOUT_SECONDS:.0f}s")
    return MetricError("PrometheusUnreachable", f"cannot reach Prometheus at {url}: "
                                                f"{type(err).__name__}")


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


def to_total(query: str, result: Any) -> Sample:
    """The one number a scaling metric must give: refuse what cannot be trusted (no series,
    several, a scalar or a matrix, a value that is not a finite non-negative number)."""
    series = to_vector(query, result)
    if not series:
        raise MetricError("EmptyResult", f"the query {query!r} returned no series")
    if len(series) > 1:
        raise MetricError("TooManySeries", f"the query {query!r} returned {len(series)} series; "
                                           "it must return one (wrap it in sum(...))")
    sample = series[0]["value"]
    raw = sample[1] if isinstance(sample, list | tuple) and len(sample) == 2 else sample
    value, problem = read_number(raw)
    if problem is not None:
        raise MetricError("InvalidValue", f"the query {query!r} gave {_shown(raw)}: {problem}; "
                                          "ignored, not acted on")
    return Sample(value)


def read_number(raw: Any) -> tuple[float, str | None]:
    """A sample's value as Prometheus writes it (a string, e.g. "3.5", "NaN", "+Inf"), or
    why it cannot be used: not a number, NaN, infinite, negative."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return math.nan, f"non-numeric ({type(raw).__name__})"
    try:
        value = float(raw)
    except ValueError:
        return math.nan, "non-numeric"
    if math.isnan(value):
        return value, "NaN"
    if math.isinf(value):
        return value, "+Inf" if value > 0 else "-Inf"
    if value < 0:
        return value, "negative"
    return value, None


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


async def query_total(url: str, query: str) -> Sample:
    result = await workers.on_prometheus(_raw_query, url, query)
    return to_total(query, result)


def to_vector(query: str, result: Any) -> list[dict[str, Any]]:
    """An instant vector (one `{"metric", "value"}` per series): refuse a scalar or a matrix,
    whose samples would be read as the wrong thing."""
    if not isinstance(result, list):
        raise MetricError("NotAVector", f"the query {query!r} did not return an instant "
                                        f"vector (got {_shown(result)})")
    for item in result:
        if not isinstance(item, dict) or "metric" not in item or "value" not in item:
            raise MetricError("NotAVector", f"the query {query!r} did not return an instant "
                                            f"vector (got {str(item)[:80]})")
    return result


async def query_vector(url: str, query: str) -> list[dict[str, Any]]:
    """Every series of an instant query, e.g. one per shard; empty when nothing matched."""
    result = await workers.on_prometheus(_raw_query, url, query)
    return to_vector(query, result)


# --- range queries ------------------------------------------------------------------------


class PrometheusError(Exception):
    """The query could not be run or its answer cannot be used; the message says why.
    `refused`: Prometheus answered with an error (the query's fault, not its being away)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class RangeSeries:
    """One series on the query's step grid: `values[i]` is at `start + i * step` (None = no
    sample). `ignored` counts the samples left out, by why (NaN, +Inf, negative, ...)."""

    start: float
    step: float
    values: list[float | None]
    ignored: dict[str, int] = field(default_factory=dict)

    def ignored_text(self) -> str:
        """What was left out, for a log line or a condition: "ignored 3 NaN samples"."""
        return ignored_text(self.ignored)


def ignored_text(counts: Mapping[str, int]) -> str:
    if not counts:
        return ""
    by_count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{n} {why} sample{'s' if n > 1 else ''}" for why, n in by_count]
    return "ignored " + ", ".join(parts)


def on_grid(samples: Sequence[Any], start: float, end: float, step: float) -> RangeSeries:
    """Place `[timestamp, "value"]` samples on the grid start, start + step, ... <= end. A
    sample that is not a finite non-negative number is left out and counted (Prometheus
    omits steps with no data: both leave None)."""
    count = math.floor((end - start) / step + 1e-9) + 1
    values: list[float | None] = [None] * count
    ignored: dict[str, int] = {}
    for sample in samples:
        index, value, problem = _placed(sample, start, step, count)
        if problem is not None:
            ignored[problem] = ignored.get(problem, 0) + 1
        elif index is not None:
            values[index] = value
    return RangeSeries(start, step, values, ignored)


def _placed(sample: Any, start: float, step: float,
            count: int) -> tuple[int | None, float, str | None]:
    """A sample's grid row and value, or why it was left out."""
    if not isinstance(sample, list | tuple) or len(sample) != 2:
        return None, math.nan, "malformed"
    stamp, value, problem = _stamp(sample[0]), *read_number(sample[1])
    if stamp is None:
        return None, value, "malformed"
    index = round((stamp - start) / step)
    return (index if 0 <= index < count else None), value, problem


def _stamp(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        stamp = float(raw)
    except ValueError:
        return None
    return stamp if math.isfinite(stamp) else None


def single_series(result: Any, query: str) -> Sequence[Any]:
    """The samples of the one series a query must return for a load trace."""
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise PrometheusError(f"query {query!r} did not return a range vector "
                              f"(got {_shown(result)})")
    if len(result) != 1:
        raise PrometheusError(
            f"query {query!r} returned {len(result)} series; it must return exactly one "
            "(aggregate it, e.g. sum(...))"
        )
    samples = result[0].get("values", [])
    if not isinstance(samples, list):
        raise PrometheusError(f"query {query!r} did not return a range vector "
                              f"(values: {_shown(samples)})")
    return samples


def raw_range(url: str, query: str, start: float, end: float, step: float) -> Any:
    """Prometheus' answer to a range query (epoch seconds, step in seconds), as parsed JSON.
    A refusal (HTTP 4xx/5xx: a bad query, too many samples) raises with `refused` set; a
    transport failure without."""
    PROMETHEUS_QUERIES.labels("range").inc()
    try:
        return client(url).custom_query_range(
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}s",
        )
    except Exception as err:  # the client raises requests' and its own errors: report any
        refused = isinstance(err, PrometheusApiClientException)
        raise PrometheusError(f"range query to {url} failed: {_first_line(err)}",
                              refused=refused) from err


def query_range(url: str, query: str, start: float, end: float, step: float) -> RangeSeries:
    """Run a range query and return its one series (blocking: the backtest command)."""
    return on_grid(single_series(raw_range(url, query, start, end, step), query), start, end,
                   step)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
