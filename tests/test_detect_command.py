"""The `adaptive-operator detect` contract and its input errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from adaptive_operator.cli import main


def write_series(path: Path, values: list[float]) -> Path:
    lines = ["timestamp,value"] + [f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00,{v}"
                                   for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_out(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def series() -> list[float]:
    values = 10 + np.random.default_rng(5).normal(0, 1, 700)
    values[660] += 20
    return [round(float(v), 3) for v in values]


def test_output_contract(tmp_path: Path, series: list[float]) -> None:
    out = tmp_path / "out.csv"
    assert main(["detect", "--series", str(write_series(tmp_path / "in.csv", series)),
                 "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "timestamp,value,score,is_anomaly"
    rows = read_out(out)
    assert len(rows) == len(series)
    assert [float(r["value"]) for r in rows] == series
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    assert {r["is_anomaly"] for r in rows} <= {"0", "1"}
    # The spike's row, or a row later: a row is judged by its score smoothed over 3 rows.
    assert "1" in [r["is_anomaly"] for r in rows[660:662]]


def test_deterministic_and_causal(tmp_path: Path, series: list[float]) -> None:
    outputs = []
    for name, values in [("a", series), ("b", series), ("c", series[:400])]:
        out = tmp_path / f"{name}.csv"
        main(["detect", "--series", str(write_series(tmp_path / f"{name}.in", values)),
              "--out", str(out)])
        outputs.append(out.read_text().splitlines())
    assert outputs[0] == outputs[1]
    assert outputs[0][:401] == outputs[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("time,value\n1,2\n", "in.csv:1: expected the header", id="wrong-header"),
        pytest.param("", "in.csv:1: expected the header", id="empty-file"),
        pytest.param("timestamp,value\n", "no data rows", id="header-only"),
        pytest.param("timestamp,value\n0,1\n60,abc\n", "in.csv:3: value 'abc' is not a number",
                     id="non-numeric-value-with-line-number"),
        pytest.param("timestamp,value\n0,1\n60,1,3\n", "in.csv:3: expected 2 fields",
                     id="extra-field"),
        pytest.param("timestamp,value\n0,nan\n", "in.csv:2: value 'nan' is not finite",
                     id="nan-value"),
        pytest.param("timestamp,value\n,1\n", "in.csv:2: empty timestamp", id="empty-timestamp"),
    ],
)
def test_bad_input_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(text)
    assert main(["detect", "--series", str(source), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adaptive-operator detect: error: ")
    assert message in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--series", str(tmp_path / "nope.csv"), "--out",
                 str(tmp_path / "o.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_long_series_says_how_far_the_scoring_got(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress on stderr by tenths of the rows (the same lines every run); the output is what
    `detect_series` gives."""
    from adaptive_operator.commands import detect, series_file
    from adaptive_operator.domain.healing.anomaly import DetectorSettings, detect_series

    monkeypatch.setattr(series_file, "PROGRESS_ROWS", 1_000)
    values = [round(float(v), 3) for v in 10 + np.random.default_rng(7).normal(0, 1, 1_600)]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * i},{v}\n"
                                                     for i, v in enumerate(values)))
    assert main(["detect", "--series", str(source), "--out", str(out)]) == 0
    # Blocks of 500 rows from row 100 (the first training rows): each ends in another tenth.
    assert capsys.readouterr().err.splitlines() == [
        f"detect: {done} of 1,600 rows scored" for done in ("600", "1,100", "1,600")]
    expected = detect_series(values, DetectorSettings(), random_state=detect.RANDOM_STATE)
    assert [int(r["is_anomaly"]) for r in read_out(out)] == expected.flags.astype(int).tolist()
    assert [float(r["score"]) for r in read_out(out)] == [round(float(s), 6)
                                                          for s in expected.scores]


def test_a_short_series_prints_nothing(tmp_path: Path, series: list[float],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert len(series) < 20_000
    assert main(["detect", "--series", str(write_series(tmp_path / "in.csv", series)),
                 "--out", str(tmp_path / "out.csv")]) == 0
    assert capsys.readouterr().err == ""
