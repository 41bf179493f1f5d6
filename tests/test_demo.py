"""The demo's pure parts: traces, pacing loop, table rows, picture."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from adaptive_operator.cli import main
from adaptive_operator.commands.demo import load_values
from adaptive_operator.demo import live


def test_synthetic_trace_is_daily_and_positive() -> None:
    values = live.synthetic_trace(days=2, per_day=48)
    assert len(values) == 96 and min(values) > 0
    assert values[12] > values[0]  # the daily rise in the morning
    assert live.synthetic_trace(days=2) == values  # deterministic


def test_downsample_averages_groups_and_keeps_the_tail() -> None:
    assert live.downsample([1, 3, 5, 7, 9], 2) == [2.0, 6.0, 9.0]


def test_read_trace_skips_empty_values_and_refuses_short_files(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,value\n" + "".join(f"{i},{i}\n" for i in range(12)) + "12,\n")
    assert live.read_trace(path) == [float(i) for i in range(12)]
    path.write_text("timestamp,value\n0,1\n")
    with pytest.raises(ValueError, match="too few rows"):
        live.read_trace(path)


def test_play_sets_each_value_and_records_samples() -> None:
    run, seen, lines = live.DemoRun(target=10.0), [], []

    def sample(t: float, load: float) -> live.Sample:
        return live.Sample(t, load, ready=2, desired=3, forecast=None, note="ScaleUp")

    live.play([5.0, 25.0], 0.0, seen.append, sample, lines.append, run)
    assert seen == [5.0, 25.0]
    assert [s.load for s in run.samples] == [5.0, 25.0]
    assert "UNDER" not in lines[1] and lines[2].endswith("ScaleUp  UNDER")  # 25 > 2 x 10


def test_picture_is_written(tmp_path: Path) -> None:
    run = live.DemoRun(10.0, [live.Sample(1, 5, 1, 1, None, ""), live.Sample(2, 9, 1, 1, 12, "")])
    live.write_picture(run, tmp_path / "d" / "demo.png")
    assert (tmp_path / "d" / "demo.png").read_bytes()[:4] == b"\x89PNG"


def test_load_values_uses_the_given_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,value\n" + "".join(f"{i},{i}\n" for i in range(24)))
    args = argparse.Namespace(trace=path, downsample=6, rows=3)
    values, source = load_values(args)
    assert values == [2.5, 8.5, 14.5] and "t.csv" in source


def test_demo_needs_the_local_clusters_prometheus(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PROMETHEUS_TARGETS_DIR", raising=False)
    assert main(["demo"]) == 2
    assert "PROMETHEUS_TARGETS_DIR is not set" in capsys.readouterr().err
