"""Bad input at the command-line contracts (`replay`, `detect`, `backtest`, `shard-plan`): every
bad file or size ends in one line on stderr and exit code 2, never a traceback, a silent wrong
answer or runaway memory; a UTF-8 byte-order mark is valid input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.cli import main

VALID = "timestamp,value\n" + "".join(f"{i * 60},{10 + i % 7}\n" for i in range(40))
FIELD_LIMIT = csv.field_size_limit()


def _argv(command: str, source: Path, out: Path) -> list[str]:
    common = ["--target-per-replica", "5", "--startup-seconds", "60"]
    if command == "replay":
        return ["replay", "--trace", str(source), "--policy", "hpa", *common, "--out", str(out)]
    if command == "backtest":
        return ["backtest", "--trace", str(source), *common, "--plot", str(out)]
    return ["detect", "--series", str(source), "--out", str(out)]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


COMMANDS = ("replay", "detect", "backtest")
BAD_FILES = [
    pytest.param(b"timestamp,value\n0,1\n60,\xff\xfe\n", ":3: not UTF-8 text", id="not-utf8"),
    pytest.param(b"timestamp,value\n0,1\n60,2\x00\n", ":3: a NUL byte", id="nul-byte"),
    pytest.param(b"timestamp,value\n0,1\n60," + b"1" * (FIELD_LIMIT + 1) + b"\n",
                 ":3: field larger than field limit", id="field-over-the-csv-limit"),
    pytest.param(b"timestamp,value\nnan,1\n60,2\n", ":2: timestamp 'nan'", id="nan-timestamp"),
    pytest.param(b"timestamp,value\n0,1\ninf,2\n", ":3: timestamp 'inf'", id="inf-timestamp"),
    pytest.param(b"timestamp,value\n0,1\n1e300,2\n", ":3: timestamp '1e300'",
                 id="timestamp-past-the-calendar"),
    pytest.param(b"timestamp,value\n0,1\nsoon,2\n", ":3: timestamp 'soon'",
                 id="garbage-timestamp"),
    pytest.param(b"timestamp,value\n0,1\n60,2\n60,3\n", ":4:", id="duplicate-timestamp"),
    pytest.param(b"timestamp,value\n60,1\n0,2\n120,3\n", ":3: timestamps must increase",
                 id="unsorted-timestamps"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: bytes,
    message: str,
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    out = tmp_path / "out"
    code, err = _run(capsys, _argv(command, source, out))
    assert code == 2
    assert err.startswith(f"adaptive-operator {command}: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_in_a_missing_folder_is_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(VALID)
    code, err = _run(capsys, _argv(command, source, tmp_path / "missing" / "out"))
    assert code == 2
    assert "does not exist" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ("replay", "detect"))
def test_a_byte_order_mark_is_valid_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text(VALID)
    marked.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert main(_argv(command, plain, tmp_path / "a.csv")) == 0
    assert main(_argv(command, marked, tmp_path / "b.csv")) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param(["--max-replicas", str(10**12)], "--max-replicas", id="absurd-max-replicas"),
    pytest.param(["--startup-seconds", "1e12"], "--startup-seconds", id="absurd-startup"),
])
def test_absurd_replay_sizes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(VALID)
    code, err = _run(capsys, [*_argv("replay", source, tmp_path / "o.csv"), *extra])
    assert code == 2 and message in err


@pytest.mark.parametrize(("command", "interval", "startup", "message"), [
    pytest.param("replay", 0.001, "86400", "rows of the trace", id="a-day-of-millisecond-rows"),
    pytest.param("replay", 0.01, "0.5", "errors (at most", id="a-day-of-errors-per-row"),
    pytest.param("backtest", 1, "3600", "errors (at most", id="backtest-too"),
])
def test_a_forecast_too_large_to_keep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, interval: float,
    startup: str, message: str,
) -> None:
    """The forecaster keeps a day of errors per look-ahead row: 86 million rows a day at 1 ms,
    or an hour ahead at 1 s, would take gigabytes."""
    source = tmp_path / "in.csv"
    source.write_text("timestamp,value\n" + "".join(f"{i * interval},{i}\n" for i in range(5)))
    argv = [*_argv(command, source, tmp_path / "o.csv"), "--startup-seconds", startup]
    if command == "replay":
        argv[argv.index("hpa")] = "predictive"
    code, err = _run(capsys, argv)
    assert code == 2 and message in err


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    pytest.param(["--slots", "1000000000", "--shards-from", "2"], None, "--slots must be",
                 id="a-billion-slots"),
    pytest.param(["--slots", "4", "--shards-from", "5"], None, "more shards than --slots",
                 id="more-shards-than-slots-from"),
    pytest.param(["--slots", "4", "--shards-from", "2", "--shards-to", "5"], None,
                 "more shards than --slots", id="more-shards-than-slots-to"),
    pytest.param(["--slots", "1", "--from-assignment", "-"], b"[\xff]", "not UTF-8",
                 id="assignment-not-utf8"),
    pytest.param(["--slots", "1", "--from-assignment", "-"], b"[" * 100_000, "not JSON",
                 id="assignment-nested-too-deep"),
    pytest.param(["--slots", "1", "--from-assignment", "-"], b"[" + b"9" * 5000 + b"]",
                 "not JSON", id="assignment-number-too-long"),
    pytest.param(["--slots", "1", "--from-assignment", "-"], b" " * (17 << 20), "larger than",
                 id="assignment-larger-than-any-valid-one"),
])
def test_shard_plan_refuses_absurd_sizes_and_bad_bytes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
    stdin: bytes | None, message: str,
) -> None:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    if "--shards-to" not in argv:
        argv = [*argv, "--shards-to", "1"]
    code, err = _run(capsys, ["shard-plan", *argv])
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_a_byte_order_mark_is_valid_in_an_assignment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "a.json"
    source.write_bytes(b"\xef\xbb\xbf[0, 0, 1, 1]")
    assert main(["shard-plan", "--slots", "4", "--from-assignment", str(source),
                 "--shards-to", "1"]) == 0
    assert '"after": [0, 0, 0, 0]' in capsys.readouterr().out


# Hostile files: a valid trace with bytes inserted, rows swapped or cells replaced.
HOSTILE_CELLS = st.sampled_from(["nan", "inf", "-inf", "", "1e400", "\x00", "\ufeff", "0x10",
                                 "2024-13-01", "9" * 400, '"', "\udcff", "1,2", "\r"])


@st.composite
def hostile_traces(draw: st.DrawFn) -> bytes:
    rows = [[str(i * 60), str(10 + i % 7)] for i in range(draw(st.integers(2, 12)))]
    for _ in range(draw(st.integers(0, 3))):
        row, col = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 1))
        rows[row][col] = draw(HOSTILE_CELLS)
    if draw(st.booleans()):
        i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(rows) - 1))
        rows[i], rows[j] = rows[j], rows[i]
    text = "timestamp,value\n" + "".join(f"{a},{b}\n" for a, b in rows)
    data = text.encode("utf-8", "surrogateescape" if "\udcff" in text else "strict")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@settings(max_examples=60)
@given(content=hostile_traces(), command=st.sampled_from(("replay", "detect")))
def test_any_hostile_file_ends_in_a_result_or_one_line(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, command: str
) -> None:
    folder = tmp_path_factory.mktemp("hostile")
    source, out = folder / "in.csv", folder / "out.csv"
    source.write_bytes(content)
    err = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err):
        code = main(_argv(command, source, out))
    if code == 0:  # accepted: then the timestamps were times, in order, one row per row
        _assert_sound(source, out)
    else:
        assert code == 2
        assert err.getvalue().count("\n") == 1 and not out.exists()


def _assert_sound(source: Path, out: Path) -> None:
    from adaptive_operator.commands.series_file import parse_time

    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))[1:]
    times = [parse_time(row[0], "out") for row in rows]
    assert times == sorted(set(times))
    data_lines = source.read_bytes().decode("utf-8-sig").strip("\n").count("\n")
    assert len(rows) <= data_lines
