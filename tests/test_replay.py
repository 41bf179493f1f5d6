"""The replay simulator's contract: causal, deterministic, the pods model, input errors."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.cli import main
from adaptive_operator.domain.common.views import RowsView
from adaptive_operator.domain.scaling.replay import (
    NoForecast,
    PodPool,
    ReplayConfig,
    initial_replicas,
    replay,
)


def config(
    startup: float = 0.0, interval: float = 60.0, min_r: int = 1, max_r: int = 10_000
) -> ReplayConfig:
    return ReplayConfig(10.0, startup, interval, min_r, max_r)


def write_trace(
    path: Path, rows: Sequence[tuple[object, object]], header: str = "timestamp,value"
) -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows), encoding="utf-8")
    return path


def run(tmp_path: Path, trace: Path, *extra: str, policy: str = "hpa") -> list[list[str]]:
    out = tmp_path / "out.csv"
    code = main(
        [
            "replay",
            "--trace",
            str(trace),
            "--policy",
            policy,
            "--target-per-replica",
            "10",
            "--startup-seconds",
            "30",
            "--out",
            str(out),
            *extra,
        ]
    )
    assert code == 0
    with out.open(newline="") as handle:
        return list(csv.reader(handle))


loads = st.lists(st.one_of(st.none(), st.floats(0, 2000, allow_nan=False)), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(loads, st.integers(1, 59), st.sampled_from([0.0, 45.0, 300.0]))
def test_a_prefix_gives_the_same_decisions(
    values: list[float | None], cut: int, startup: float
) -> None:
    cut = min(cut, len(values))
    whole = replay(values, config(startup))
    prefix = replay(values[:cut], config(startup))
    assert prefix.desired_replicas == whole.desired_replicas[:cut]
    assert prefix.serving_pods == whole.serving_pods[:cut]


@settings(max_examples=30, deadline=None)
@given(loads)
def test_replay_is_deterministic(values: list[float | None]) -> None:
    assert replay(values, config(60.0)) == replay(values, config(60.0))


@settings(max_examples=60, deadline=None)
@given(loads)
def test_an_unavailable_value_never_scales_down(values: list[float | None]) -> None:
    result = replay(values, config(30.0))
    previous = initial_replicas(values, config(30.0))
    for value, desired in zip(values, result.desired_replicas, strict=True):
        if value is None:
            assert desired >= previous
        previous = desired


def test_initial_pods_are_ready_and_clamped() -> None:
    assert initial_replicas([95.0, 1.0], config()) == 10
    assert initial_replicas([95.0, 1.0], config(max_r=4)) == 4
    assert initial_replicas([0.0, 1.0], config(min_r=3)) == 3
    assert initial_replicas([None, 1.0], config(min_r=2)) == 2
    assert replay([95.0, 95.0], config(startup=1e9)).serving_pods == (10, 10)


def test_new_pods_serve_from_the_first_midpoint_after_startup() -> None:
    # Row 0 (load 10) holds 1 pod; the decision for row 1 (load 40) at t=120 adds 3 pods.
    values = [10.0, 40.0, 40.0, 40.0, 40.0]
    result = replay(values, config(startup=60.0))
    assert result.desired_replicas == (1, 4, 4, 4, 4)
    # Created at t=120, ready at t=180: row 2's midpoint (150) is too early, row 3's (210) is not.
    assert result.serving_pods == (1, 1, 1, 4, 4)


def test_pods_ready_exactly_at_a_midpoint_serve_it() -> None:
    result = replay([10.0, 40.0, 40.0], config(startup=30.0))
    assert result.serving_pods == (1, 1, 4)


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    # After row 1, 4 pods of which 3 start until t=420. Row 2's 42 over the 1 ready pod would ask
    # for 5, but with the 3 starting pods counted as serving zero it is within tolerance: hold.
    assert replay([10.0, 40.0, 42.0], config(startup=300.0)).desired_replicas == (1, 4, 4)
    assert replay([10.0, 40.0, 42.0], config(startup=0.0)).desired_replicas == (1, 4, 4)
    assert replay([10.0, 40.0, 60.0], config(startup=300.0)).desired_replicas == (1, 4, 6)


def test_pod_pool_counts_pods_ready_after_startup() -> None:
    pool = PodPool(3)
    pool.resize(4, now=0.0, startup_seconds=100.0)
    assert (len(pool), pool.ready_at(50.0), pool.ready_at(100.0)) == (4, 3, 4)


def test_scale_down_removes_the_newest_pods_first() -> None:
    pool = PodPool(2)
    pool.resize(4, now=100.0, startup_seconds=50.0)
    pool.resize(3, now=110.0, startup_seconds=50.0)
    assert (pool.ready_at(120.0), len(pool)) == (2, 3)
    pool.resize(2, now=120.0, startup_seconds=50.0)
    assert (pool.ready_at(1000.0), len(pool)) == (2, 2)


def test_hpa_defaults_limit_the_scale_up_and_stabilize_the_scale_down() -> None:
    values = [10.0, 1000.0, 1000.0, 1000.0] + [10.0] * 8
    result = replay(values, config())
    assert result.desired_replicas[:4] == (1, 5, 10, 20)
    assert result.reasons[1] == "ScaleUpLimitedByPolicy"
    # Scale-down waits for the 300 s window: the recommendation of 100 made at t=240 leaves it
    # at t=540 (the decision for row 8).
    assert result.desired_replicas[4:] == (20, 20, 20, 20, 1, 1, 1, 1)


class RecordingAdvisor:
    def __init__(self, floor: int | None, down_to: int | None = None) -> None:
        self.seen: list[int] = []
        self.floor = floor
        self.down_to = down_to

    def advise(
        self,
        history: Sequence[float | None],
        interval_seconds: float,
        lookahead_seconds: float,
        target_per_replica: float,
    ) -> int | None:
        self.seen.append(len(history))
        with pytest.raises(IndexError):
            history[len(history)]
        assert (interval_seconds, lookahead_seconds, target_per_replica) == (60.0, 30.0, 10.0)
        return self.floor

    def ceiling(self) -> int | None:
        return self.down_to


def test_advisor_sees_only_rows_up_to_now_and_sets_a_floor() -> None:
    advisor = RecordingAdvisor(floor=3)
    result = replay([10.0, 10.0, 10.0], config(startup=30.0), advisor)
    assert advisor.seen == [1, 2, 3]
    assert result.desired_replicas == (3, 3, 3)
    assert replay([10.0, 10.0], config(), NoForecast()) == replay([10.0, 10.0], config())


def test_a_ceiling_scales_down_through_the_same_decision() -> None:
    # 10 pods carrying 95 hold (within tolerance); an advisor whose forecast needs 6 over the
    # look-ahead lowers them to 6 once the default 300 s scale-down window lets it. The load
    # did not fall as forecast: 95 on 6 pods is a scale-up the metrics ask for, and a
    # ceiling never cuts that.
    result = replay([95.0] * 8, config(startup=30.0), RecordingAdvisor(floor=6, down_to=6))
    assert result.desired_replicas[:7] == (10, 10, 10, 10, 10, 6, 10)
    assert result.reasons[5] == "ScaleDown"
    without = replay([95.0] * 8, config(startup=30.0), RecordingAdvisor(floor=6))
    assert without.desired_replicas == (10,) * 8


def test_prefix_view() -> None:
    view = RowsView.prefix([1.0, None, 3.0, 4.0], 3)
    assert (len(view), view[-1], view[1], list(view[0:5])) == (3, 3.0, None, [1.0, None, 3.0])
    with pytest.raises(IndexError):
        view[3]


# --- the command --------------------------------------------------------------------------------


def test_command_output_echoes_the_input(tmp_path: Path) -> None:
    rows = [
        ("2024-01-01T00:00:00Z", "10"),
        ("2024-01-01T00:01:00Z", "40.0"),
        ("2024-01-01T00:02:00Z", ""),
        ("2024-01-01T00:03:00Z", "5"),
    ]
    out = run(tmp_path, write_trace(tmp_path / "t.csv", rows))
    assert out == [
        ["timestamp", "value", "desired_replicas"],
        ["2024-01-01T00:00:00Z", "10", "1"],
        ["2024-01-01T00:01:00Z", "40.0", "4"],
        ["2024-01-01T00:02:00Z", "", "4"],
        ["2024-01-01T00:03:00Z", "5", "4"],
    ]


def test_command_respects_min_and_max(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", [(0, 10), (60, 500), (120, 500)])
    out = run(tmp_path, trace, "--min-replicas", "2", "--max-replicas", "5")
    assert [row[2] for row in out[1:]] == ["2", "5", "5"]


def test_predictive_on_too_short_a_history_is_reactive(tmp_path: Path) -> None:
    # Two rows are far too little for a forecast: the advisor stands aside and hpa decides.
    trace = write_trace(tmp_path / "t.csv", [(0, 10), (60, 500)])
    assert run(tmp_path, trace, policy="predictive") == run(tmp_path, trace)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("time,value\n0,1\n60,1\n", "t.csv:1: expected the header", id="bad-header"),
        pytest.param("", "t.csv:1: expected the header", id="empty-file"),
        pytest.param("timestamp,value\n0,1\n", "need at least 2 rows", id="one-row"),
        pytest.param("timestamp,value\n0,1\n60,abc\n", "t.csv:3: value 'abc'", id="non-numeric"),
        pytest.param("timestamp,value\n0,1\n60,-4\n", "t.csv:3: value '-4'", id="negative"),
        pytest.param("timestamp,value\n0,1\n60,nan\n", "t.csv:3: value 'nan'", id="nan"),
        pytest.param(
            "timestamp,value\n0,1\n60,1\n150,1\n", "t.csv:4: uneven spacing", id="uneven-spacing"
        ),
        pytest.param(
            "timestamp,value\n60,1\n0,1\n",
            "t.csv:3: timestamps must increase",
            id="decreasing-time",
        ),
        pytest.param(
            "timestamp,value\n0,1\nyesterday,1\n",
            "t.csv:3: timestamp 'yesterday'",
            id="bad-timestamp",
        ),
        pytest.param(
            "timestamp,value\n0,1\n60,1,2\n", "t.csv:3: expected 2 fields", id="extra-field"
        ),
    ],
)
def test_command_input_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(content, encoding="utf-8")
    code = main(
        [
            "replay",
            "--trace",
            str(trace),
            "--policy",
            "hpa",
            "--target-per-replica",
            "10",
            "--startup-seconds",
            "0",
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--target-per-replica", "0", "--startup-seconds", "0"],
            "--target-per-replica",
            id="zero-target",
        ),
        pytest.param(
            ["--target-per-replica", "10", "--startup-seconds", "-1"],
            "--startup-seconds",
            id="negative-startup",
        ),
        pytest.param(
            [
                "--target-per-replica",
                "10",
                "--startup-seconds",
                "0",
                "--min-replicas",
                "5",
                "--max-replicas",
                "2",
            ],
            "--min-replicas",
            id="min-above-max",
        ),
        pytest.param(
            ["--target-per-replica", "10", "--startup-seconds", "0", "--scale-down-on-forecast"],
            "--scale-down-on-forecast needs --policy predictive",
            id="scale-down-on-forecast-without-a-forecast",
        ),
        pytest.param(
            ["--target-per-replica", "10", "--startup-seconds", "0", "--quantile", "0.9"],
            "--quantile needs --policy predictive",
            id="quantile-without-a-forecast",
        ),
        pytest.param(
            ["--target-per-replica", "10", "--startup-seconds", "0",
             "--max-unserved-percent", "1"],
            "--max-unserved-percent needs --policy predictive",
            id="objective-without-a-forecast",
        ),
    ],
)
def test_command_argument_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    trace = write_trace(tmp_path / "t.csv", [(0, 1), (60, 1)])
    code = main(
        [
            "replay",
            "--trace",
            str(trace),
            "--policy",
            "hpa",
            *args,
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--quantile", "1"], "--quantile must be", id="quantile-one"),
        pytest.param(["--quantile", "nan"], "--quantile must be", id="quantile-nan"),
        pytest.param(["--look-ahead-factor", "0.5"], "--look-ahead-factor", id="factor-below-1"),
        pytest.param(["--max-unserved-percent", "101"], "--max-unserved-percent",
                     id="objective-above-100"),
    ],
)
def test_operating_point_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    trace = write_trace(tmp_path / "t.csv", [(0, 1), (60, 1)])
    code = main(["replay", "--trace", str(trace), "--policy", "predictive",
                 "--target-per-replica", "10", "--startup-seconds", "0", *args,
                 "--out", str(tmp_path / "o.csv")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_operating_point_flags_at_their_defaults_change_nothing(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", [(i * 60, 10 + i % 7) for i in range(40)])
    plain = run(tmp_path, trace, policy="predictive")
    explicit = run(tmp_path, trace, "--quantile", "0.8", "--look-ahead-factor", "1",
                   policy="predictive")
    assert explicit == plain


def test_command_missing_trace_and_unwritable_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--policy", "hpa", "--target-per-replica", "10", "--startup-seconds", "0"]
    assert (
        main(
            [
                "replay",
                "--trace",
                str(tmp_path / "nope.csv"),
                *common,
                "--out",
                str(tmp_path / "o.csv"),
            ]
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    trace = write_trace(tmp_path / "t.csv", [(0, 1), (60, 1)])
    assert (
        main(
            [
                "replay",
                "--trace",
                str(trace),
                *common,
                "--out",
                str(tmp_path / "missing-dir" / "o.csv"),
            ]
        )
        == 2
    )
    assert "cannot write" in capsys.readouterr().err


def test_epoch_and_iso_timestamps_give_the_same_decisions(tmp_path: Path) -> None:
    values = [10, 80, 80, 5, 5]
    epoch = write_trace(
        tmp_path / "e.csv", [(1700000000 + 60 * i, v) for i, v in enumerate(values)]
    )
    iso = write_trace(
        tmp_path / "i.csv", [(f"2023-11-14T22:{13 + i:02d}:20", v) for i, v in enumerate(values)]
    )
    assert [r[2] for r in run(tmp_path, epoch)] == [r[2] for r in run(tmp_path, iso)]


def test_a_long_trace_says_how_far_the_replay_got(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress on stderr by tenths of the rows; the decisions are those of a replay without it,
    and a trace under the bar prints nothing."""
    from adaptive_operator.commands import series_file

    monkeypatch.setattr(series_file, "PROGRESS_ROWS", 25)
    values: list[float | None] = [float(10 * (i % 7)) for i in range(30)]
    trace = write_trace(tmp_path / "t.csv", [(60 * i, v) for i, v in enumerate(values)])
    out = run(tmp_path, trace)
    assert capsys.readouterr().err.splitlines() == [
        f"replay: {done} of 30 rows decided" for done in (3, 6, 9, 12, 15, 18, 21, 24, 27, 30)]
    expected = replay(values, ReplayConfig(10.0, 30.0, 60.0, 1, 10_000))
    assert [int(row[2]) for row in out[1:]] == list(expected.desired_replicas)
    run(tmp_path, write_trace(tmp_path / "short.csv", [(60 * i, 5) for i in range(24)]))
    assert capsys.readouterr().err == ""
