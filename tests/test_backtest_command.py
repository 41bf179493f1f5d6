"""`adaptive-operator backtest`: the table, the picture, one-line errors; the metrics and the
Prometheus range adapter it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaptive_operator.adapters.prometheus import PrometheusError, on_grid, single_series
from adaptive_operator.cli import main
from adaptive_operator.commands.backtest import parse_step
from adaptive_operator.commands.replay import read_trace
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay
from adaptive_operator.domain.scaling.replay_metrics import replay_metrics

INTERVAL = 1800  # 30-minute rows: a week of daily season in 336 rows keeps the test fast
TARGET = 10.0


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = np.arange(7 * 48)
    rng = np.random.default_rng(3)
    y = 150 + 80 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 4, len(t))
    path = tmp_path_factory.mktemp("trace") / "load.csv"
    rows = "".join(f"{i * INTERVAL},{v:.3f}\n" for i, v in enumerate(y))
    path.write_text("timestamp,value\n" + rows, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def output(trace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    plot = tmp_path_factory.mktemp("plot") / "backtest.png"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["backtest", "--trace", str(trace), "--target-per-replica", str(TARGET),
                     "--startup-seconds", "120", "--plot", str(plot)])
    assert code == 0
    return out.getvalue(), plot


def test_table_compares_hpa_and_predictive(trace: Path, output: tuple[str, Path]) -> None:
    text, _ = output
    lines = text.splitlines()
    assert lines[0].split() == ["policy", "unserved", "under-provisioned", "replica-hours",
                                "scale", "changes", "model", "MASE"]
    hpa, predictive = lines[1].split(), lines[2].split()
    loaded = read_trace(trace)
    result = replay(loaded.values, ReplayConfig(TARGET, 120, INTERVAL), None)
    expected = replay_metrics(loaded.values, result.serving_pods, result.desired_replicas,
                              TARGET, INTERVAL)
    assert hpa == ["hpa", f"{expected.unserved:.4%}", f"{expected.under_time:.4%}",
                   f"{expected.replica_hours:,.2f}", str(expected.scale_changes), "-", "-"]
    assert predictive[0] == "predictive"
    assert predictive[5] in {"SeasonalNaive", "HoltWinters", "MSTL"}
    assert float(predictive[6]) > 0
    assert lines[3].startswith("forecast used on ")


def test_plot_is_a_png(output: tuple[str, Path]) -> None:
    _, plot = output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "exactly one of --trace", id="no-source"),
        pytest.param(["--trace", "{trace}", "--prometheus-url", "http://x"], "exactly one of",
                     id="two-sources"),
        pytest.param(["--prometheus-url", "http://x", "--query", "up"], "needs --start, --end",
                     id="range-query-without-range"),
        pytest.param(["--prometheus-url", "http://x", "--query", "up", "--start", "0",
                      "--end", "3600", "--step", "fast"], "--step 'fast'", id="unparsable-step"),
        pytest.param(["--prometheus-url", "http://x", "--query", "up", "--start", "3600",
                      "--end", "0", "--step", "60"], "--end must be", id="range-backwards"),
        pytest.param(["--prometheus-url", "http://127.0.0.1:1", "--query", "up", "--start", "0",
                      "--end", "3600", "--step", "1m"], "range query to http://127.0.0.1:1",
                     id="prometheus-unreachable"),
        pytest.param(["--trace", "/nonexistent/load.csv"], "cannot read",
                     id="missing-trace-file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backtest", "--target-per-replica", "1", "--startup-seconds", "60"]
    code = main(argv + [a.replace("{trace}", str(trace)) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [pytest.param("60", 60.0, id="bare-seconds"), pytest.param("30s", 30.0, id="seconds"),
     pytest.param("5m", 300.0, id="minutes"), pytest.param("1h", 3600.0, id="hours")],
)
def test_step_durations(text: str, seconds: float) -> None:
    assert parse_step(text) == seconds


def test_range_samples_land_on_the_grid_with_gaps_as_none() -> None:
    series = on_grid([[100, "1.5"], [220, "2"], [280, "NaN"]], 100.0, 340.0, 60.0)
    assert series.values == [1.5, None, 2.0, None, None]


def test_a_query_must_return_one_series() -> None:
    with pytest.raises(PrometheusError, match="returned 2 series"):
        single_series([{"values": []}, {"values": []}], "rate(x[5m])")
    assert single_series([{"values": [[0, "1"]]}], "q") == [[0, "1"]]


@pytest.mark.parametrize(
    ("values", "serving", "unserved", "under_time"),
    [
        pytest.param([10.0, 10.0], [1, 1], 0.0, 0.0, id="capacity-covers-demand"),
        pytest.param([10.0, 30.0], [1, 2], 0.25, 0.5, id="second-row-short-by-ten"),
        pytest.param([None, 20.0], [0, 1], 0.5, 1.0, id="unknown-row-counts-for-nothing"),
        pytest.param([0.0, None], [1, 1], 0.0, 0.0, id="no-demand-nothing-unserved"),
    ],
)
def test_replay_metrics(
    values: list[float | None], serving: list[int], unserved: float, under_time: float
) -> None:
    metrics = replay_metrics(values, serving, [1, 2], 10.0, 1800.0)
    assert metrics.unserved == pytest.approx(unserved)
    assert metrics.under_time == pytest.approx(under_time)
    assert metrics.replica_hours == pytest.approx(sum(serving) / 2)
    assert metrics.scale_changes == 1
