"""Prometheus queries (`prometheus_http` carries them): instant ones off the event loop, for
the operator, and range queries (blocking) for history and the backtest command.

Every failure becomes a `MetricError` whose reason (CamelCase) and message go into a status
condition verbatim, so a user sees Prometheus' short refusal or why the value was refused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from adaptive_operator.adapters import workers
from adaptive_operator.adapters.prometheus_http import (
    Endpoint,
    HttpError,
    IoLoop,
    endpoint_of,
    post_form,
)
from adaptive_operator.adapters.telemetry import PROMETHEUS_QUERIES

DEFAULT_TIMEOUT_SECONDS = 5.0  # an instant query's overall deadline
RANGE_TIMEOUT_SECONDS = 30.0  # a range query's (a history backfill reads days)
Target = Endpoint | str  # a bare URL is an endpoint without credentials


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


def _raw_query(target: Target, query: str, io: IoLoop | None = None) -> list[dict[str, Any]]:
    PROMETHEUS_QUERIES.labels("instant").inc()
    try:
        data = post_form(endpoint_of(target), "/api/v1/query", {"query": query},
                         DEFAULT_TIMEOUT_SECONDS, io)
    except HttpError as err:
        if err.reason == "QueryFailed":
            raise MetricError("QueryFailed", f"Prometheus refused the query {query!r}: "
                                             f"{err.message}") from err
        raise MetricError(err.reason, err.message) from err
    result = data.get("result") if isinstance(data, dict) else None
    if result is None:
        raise MetricError("InvalidAnswer", f"the answer to {query!r} has no result")
    return result  # type: ignore[no-any-return]


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


async def query_total(target: Target, query: str, pool: Executor | None = None) -> Sample:
    """The query's one number, read on `pool`'s threads (None: the loop's default pool)."""
    result = await workers.on_pool(pool, _raw_query, target, query)
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


async def query_vector(target: Target, query: str, pool: Executor | None = None,
                       io: IoLoop | None = None) -> list[dict[str, Any]]:
    """Every series of an instant query, e.g. one per shard; empty when nothing matched."""
    result = await workers.on_pool(pool, _raw_query, target, query, io)
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


def raw_range(target: Target, query: str, start: float, end: float, step: float,
              io: IoLoop | None = None) -> Any:
    """Prometheus' answer to a range query (epoch seconds, step in seconds), as parsed JSON.
    A refusal (HTTP 400/422: a bad query, too many samples) raises with `refused` set; a
    transport failure without."""
    PROMETHEUS_QUERIES.labels("range").inc()
    endpoint = endpoint_of(target)
    form = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s"}
    try:
        data = post_form(endpoint, "/api/v1/query_range", form, RANGE_TIMEOUT_SECONDS, io)
    except HttpError as err:
        raise PrometheusError(f"range query to {endpoint} failed: {err.message}",
                              refused=err.refused) from err
    if not isinstance(data, dict) or "result" not in data:
        raise PrometheusError(f"range query to {endpoint} failed: the answer has no result")
    return data["result"]


def runners(io: IoLoop) -> tuple[Callable[[Target, str], Any], Callable[..., Any]]:
    """The instant and the range query on `io` (the batchers' runners, in `run`)."""
    return functools.partial(_raw_query, io=io), functools.partial(raw_range, io=io)


def query_range(target: Target, query: str, start: float, end: float,
                step: float) -> RangeSeries:
    """Run a range query and return its one series (blocking: the backtest command)."""
    return on_grid(single_series(raw_range(target, query, start, end, step), query), start, end,
                   step)
