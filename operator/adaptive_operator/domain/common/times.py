"""Times as the API server and the trace files write them, to and from seconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def timestamp(now: float) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes times."""
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Seconds since the epoch from epoch seconds or ISO 8601 (without a zone: UTC).

    Raises ValueError for anything else.
    """
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
