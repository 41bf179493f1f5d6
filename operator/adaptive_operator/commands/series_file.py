"""Reading the `timestamp,value` CSV files of the command-line contracts, refusing bad bytes.

Every way a file can be wrong ends in one `UsageError` naming the file and line: bytes that are
not UTF-8, NUL bytes, a field over the csv module's limit, a timestamp that is not a finite time
inside the calendar, timestamps that do not increase. A UTF-8 byte-order mark is valid (what
spreadsheets write).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from adaptive_operator.domain.common import times

HEADER = ["timestamp", "value"]
# The calendar datetime can represent (years 1 to 9999), as epoch seconds.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
# A file at least this long says on stderr how far the command got (every tenth of it):
# `detect` scores 600-1,000 rows per CPU second and a predictive `replay` decides about 3,500
# (benchmarks/results/replay_speed_predictive.md), so such a file is seconds of work or more.
PROGRESS_ROWS = 20_000


def usage_error(message: str) -> Exception:
    from adaptive_operator.cli import UsageError

    return UsageError(message)


def data_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every row after the `timestamp,value` header."""
    rows = list(_numbered(path, csv.reader(io.StringIO(_text(path), newline=""))))
    if not rows or [cell.strip() for cell in rows[0][1]] != HEADER:
        raise usage_error(f"{path}:1: expected the header 'timestamp,value'")
    return rows[1:]


def _text(path: Path) -> str:
    """The file as text: UTF-8 (a byte-order mark allowed), without NUL bytes."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise usage_error(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise usage_error(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise usage_error(f"{path}:{line}: a NUL byte (not a text file?)")
    return text


def _numbered(path: Path, reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    line = 1
    try:
        for row in reader:
            yield line, row
            line = reader.line_num + 1  # type: ignore[attr-defined]
    except csv.Error as err:  # a field over the csv module's limit
        raise usage_error(f"{path}:{line}: {err}") from None


def parse_time(text: str, where: str) -> float:
    """Epoch seconds or ISO 8601 (UTC when no zone is given), finite and within the calendar."""
    try:
        seconds = times.parse_time(text.strip())
    except (ValueError, OverflowError):
        raise usage_error(
            f"{where}: timestamp {text!r} is neither ISO 8601 nor epoch seconds") from None
    if not math.isfinite(seconds) or not EARLIEST <= seconds <= LATEST:
        raise usage_error(f"{where}: timestamp {text!r} is not a time between years 1 and 9999")
    return seconds


def check_increasing(times: list[float], lines: list[int], path: Path) -> None:
    """Refuse a timestamp that repeats or goes back: the series would be silently misread."""
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            kind = "repeats" if times[i] == times[i - 1] else "goes back from"
            raise usage_error(
                f"{path}:{lines[i]}: timestamps must increase: this one {kind} the previous row's"
            )


def writable(path: Path) -> Path:
    """Refuse an output path in a missing folder before any work is done."""
    folder = path.parent
    if not folder.is_dir():
        raise usage_error(f"cannot write {path}: folder {folder} does not exist")
    return path


def progress_printer(command: str, verb: str, total: int) -> Callable[[int], None] | None:
    """Prints "COMMAND: N of TOTAL rows VERB" on stderr each time another tenth is done (by
    rows, not by time: the same lines on every run); None below PROGRESS_ROWS rows."""
    if total < PROGRESS_ROWS:
        return None
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        if done * 10 // total > reported * 10 // total:
            print(f"{command}: {done:,} of {total:,} rows {verb}", file=sys.stderr, flush=True)
            reported = done

    return report
