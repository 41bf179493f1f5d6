"""Prometheus reads: a range query turned into evenly spaced rows.

Blocking (prometheus_api_client over requests): fine for the CLI; the operator's loop will call
it from a thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
    from prometheus_api_client import PrometheusConnect

    try:
        client = PrometheusConnect(url=url, disable_ssl=False)
        result = client.custom_query_range(
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}s",
        )
    except Exception as err:  # the client raises requests' and its own errors: report any
        raise PrometheusError(f"range query to {url} failed: {_first_line(err)}") from err
    return on_grid(single_series(result, query), start, end, step)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
