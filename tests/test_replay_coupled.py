"""`replay --coupled UPSTREAM.csv`: causal, deterministic, and better fed than reactive alone."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from adaptive_operator.cli import main
from adaptive_operator.domain.scaling.coupled_advisor import (
    CoupledAdvisor,
    OwnAdvisor,
    UpstreamTrace,
)
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay
from adaptive_operator.domain.scaling.replay_metrics import replay_metrics

from coupling_traces import bursty, follower

ROWS = 260
TARGET = 30.0
WARM_UP_ROWS = 80


def write(path: Path, values: list[float | None], start: int = 0) -> Path:
    lines = "".join(f"{start + 60 * i},{v:.3f}\n" for i, v in enumerate(values))
    path.write_text("timestamp,value\n" + lines, encoding="utf-8")
    return path


def traces(tmp_path: Path, rows: int = ROWS) -> tuple[Path, Path]:
    up = bursty(ROWS, 21)
    down = follower(up, 3.0, 3, 0.02, 22)
    return write(tmp_path / "down.csv", down[:rows]), write(tmp_path / "up.csv", up[:rows])


def replay_cli(tmp_path: Path, trace: Path, *extra: str) -> list[int]:
    out = tmp_path / "out.csv"
    code = main(["replay", "--trace", str(trace), "--policy", "hpa", "--target-per-replica",
                 str(TARGET), "--startup-seconds", "120", "--out", str(out), *extra])
    assert code == 0
    with out.open(newline="") as handle:
        return [int(row["desired_replicas"]) for row in csv.DictReader(handle)]


def test_the_coupled_replay_serves_the_follower_better_than_reactive(tmp_path: Path) -> None:
    down, up = traces(tmp_path)
    values, upstream = read(down), read(up)
    config = ReplayConfig(TARGET, 120.0, 60.0)
    advisor = CoupledAdvisor(None, [UpstreamTrace(upstream, OwnAdvisor(), TARGET)])
    coupled = replay(values, config, advisor)
    reactive = replay(values, config)
    assert replay_cli(tmp_path, down, "--coupled", str(up)) == list(coupled.desired_replicas)
    # After the warm-up (a fit, then a dozen scored rows) the coupled service is ready for
    # the bursts that reactive scaling meets a start-up late.
    warm = slice(WARM_UP_ROWS, None)
    hpa = replay_metrics(values[warm], reactive.serving_pods[warm], (), TARGET, 60.0)
    ahead = replay_metrics(values[warm], coupled.serving_pods[warm], (), TARGET, 60.0)
    assert ahead.unserved < hpa.unserved / 2
    assert advisor.coupled.state.trusted


def read(path: Path) -> list[float | None]:
    with path.open(newline="") as handle:
        return [float(row["value"]) for row in csv.DictReader(handle)]


def test_the_coupled_replay_is_deterministic_and_causal(tmp_path: Path) -> None:
    down, up = traces(tmp_path)
    full = replay_cli(tmp_path, down, "--coupled", str(up))
    assert replay_cli(tmp_path, down, "--coupled", str(up)) == full
    short = tmp_path / "short"
    short.mkdir()
    head_down, head_up = traces(short, rows=200)
    assert replay_cli(short, head_down, "--coupled", str(head_up)) == full[:200]


@pytest.mark.parametrize(("start", "rows"), [
    pytest.param(60, ROWS, id="shifted"),
    pytest.param(0, ROWS - 1, id="shorter"),
])
def test_an_upstream_on_other_rows_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              start: int, rows: int) -> None:
    down, _ = traces(tmp_path)
    up = write(tmp_path / "other.csv", bursty(rows, 1), start)
    out = tmp_path / "out.csv"
    code = main(["replay", "--trace", str(down), "--policy", "predictive",
                 "--target-per-replica", "10", "--startup-seconds", "60", "--out", str(out),
                 "--coupled", str(up)])
    assert code == 2
    assert "must have the rows of --trace" in capsys.readouterr().err
