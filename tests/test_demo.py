"""The demo's pure parts: traces, pacing loop, table rows, manifests, picture, orchestration."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.cli import main
from adaptive_operator.commands import demo
from adaptive_operator.commands.demo import load_values
from adaptive_operator.demo import live


def test_synthetic_trace_is_daily_and_positive() -> None:
    values = live.synthetic_trace(days=2)
    assert len(values) == 48 and min(values) > 0  # hourly rows by default
    assert values[6] > values[0]  # the daily rise in the morning
    assert values[30] > values[24]  # and again the next day
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
    run = live.DemoRun(target=10.0)
    seen: list[float] = []
    lines: list[str] = []

    def sample(t: float, load: float) -> live.Sample:
        return live.Sample(t, load, ready=2, desired=3, forecast=None, note="ScaleUp",
                           reactive_ready=1)

    live.play([5.0, 25.0], 0.0, seen.append, sample, lines.append, run)
    assert seen == [5.0, 25.0]
    assert [s.load for s in run.samples] == [5.0, 25.0]
    assert lines[0] == live.HEADER
    assert "UNDER" not in lines[1] and lines[2].endswith("ScaleUp  UNDER")  # 25 > 2 x 10
    assert live.under_rows(run) == (1, 1)  # reactive: 5 <= 1 x 10, 25 > 1 x 10


def test_play_history_reports_progress_every_ten_rows_and_at_the_end() -> None:
    seen: list[float] = []
    done: list[int] = []
    live.play_history([float(i) for i in range(23)], 0.0, seen.append, done.append)
    assert len(seen) == 23 and done == [10, 20, 23]


def test_picture_is_written_with_history_and_the_reactive_twin(tmp_path: Path) -> None:
    run = live.DemoRun(10.0, [live.Sample(1, 5, 1, 1, None, "", 1),
                              live.Sample(2, 9, 1, 1, 12, "", None, 4.0)],
                       history=[4.0, 5.0, 6.0], row_seconds=2.0, created_at=-2.0)
    live.write_picture(run, tmp_path / "d" / "demo.png")
    assert (tmp_path / "d" / "demo.png").read_bytes()[:4] == b"\x89PNG"
    bare = live.DemoRun(10.0, [live.Sample(1, 5, 1, 1, None, "")])
    live.write_picture(bare, tmp_path / "bare.png")
    assert (tmp_path / "bare.png").exists()


def specs_by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == kind}


def test_manifests_are_a_predictive_service_and_its_reactive_twin() -> None:
    docs = [d for d in yaml.safe_load_all(live.manifests(7, 2, 1.5, 4, 160)) if d]
    services = specs_by_name(docs, "AdaptiveService")
    deployments = specs_by_name(docs, "Deployment")
    assert set(services) == set(deployments) == {live.NAME, live.REACTIVE}
    assert {d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"} == {7}
    predictive = AdaptiveServiceSpec.model_validate(services[live.NAME])
    reactive = AdaptiveServiceSpec.model_validate(services[live.REACTIVE])
    check_forecast_settings(predictive)
    assert reactive.predictive is None
    check_shared_settings(predictive, reactive)


def check_forecast_settings(predictive: AdaptiveServiceSpec) -> None:
    assert predictive.predictive is not None and predictive.predictive.enabled
    assert predictive.predictive.look_ahead_seconds == 4
    assert predictive.predictive.history_seconds == 160


def check_shared_settings(*specs: AdaptiveServiceSpec) -> None:
    """The twins differ in their forecast only."""
    for spec in specs:
        assert spec.sync_period_seconds == 2 and spec.tolerance == live.TOLERANCE
        assert spec.metrics[0].target_per_replica == 1.5


def _args(**kw: Any) -> argparse.Namespace:
    defaults = {"trace": None, "downsample": 12, "start": None, "history_rows": 90, "rows": 48}
    return argparse.Namespace(**{**defaults, **kw})


def test_load_values_uses_the_given_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,value\n" + "".join(f"{i},{i}\n" for i in range(24)))
    values, source = load_values(_args(trace=path, downsample=6, history_rows=2, rows=1))
    assert values == [2.5, 8.5, 14.5] and "t.csv" in source
    values, _ = load_values(_args(trace=path, downsample=6, start=1, history_rows=2, rows=1))
    assert values == [8.5, 14.5, 20.5]
    with pytest.raises(ValueError, match="4 played rows from row 0; 5 are needed"):
        load_values(_args(trace=path, downsample=6, history_rows=4, rows=1))


def test_load_values_falls_back_to_the_synthetic_trace(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "SHARED_TRACE", tmp_path / "absent.csv")
    values, source = load_values(_args())
    assert len(values) == 138 and "synthetic" in source
    assert values == live.synthetic_trace(days=6)[:138]
    shifted, _ = load_values(_args(start=5))
    assert shifted == live.synthetic_trace(days=6)[5:143]


def test_load_values_starts_the_shared_trace_on_weekdays(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    shared = tmp_path / "azure.csv"
    rows = 12 * (demo.SHARED_TRACE_START + 200)
    shared.write_text("timestamp,value\n" + "".join(f"{i},{i // 12}\n" for i in range(rows)))
    monkeypatch.setattr(demo, "SHARED_TRACE", shared)
    values, source = load_values(_args())
    assert values[0] == demo.SHARED_TRACE_START and len(values) == 138
    assert f"from played row {demo.SHARED_TRACE_START}" in source
    values, _ = load_values(_args(trace=shared))  # named explicitly: the default start too
    assert values[0] == demo.SHARED_TRACE_START


def test_observe_reads_the_forecast_at_the_look_ahead() -> None:
    status = {"desiredReplicas": 9, "lastDecision": {"reason": "ScaleUp"},
              "forecast": {"summary": "MSTL", "forecast": [
                  {"offsetSeconds": 2, "p50": 1, "pHigh": 2},
                  {"offsetSeconds": 4, "p50": 3, "pHigh": 5}]}}
    apps = SimpleNamespace(read_namespaced_deployment=lambda name, ns: SimpleNamespace(
        status=SimpleNamespace(ready_replicas=8 if name == live.NAME else 6)))
    custom = SimpleNamespace(get_namespaced_custom_object=lambda *a: {"status": status})
    assert live.observe(apps, custom) == (8, 9, 5.0, 4.0, "ScaleUp [MSTL]")
    sample = demo.sampler(apps, custom)(3.0, 100.0)
    assert (sample.ready, sample.reactive_ready, sample.forecast_offset) == (8, 6, 4.0)
    empty = SimpleNamespace(get_namespaced_custom_object=lambda *a: {})
    assert live.observe(apps, empty) == (8, None, None, 0.0, "")


def check_applied_while_playing(played: list[tuple[str, float]]) -> None:
    kinds = [k if k != "load" else f"load {v:g}" for k, v in played]
    assert kinds == ["load 1", "wait", "load 1", "load 2", "load 3", "apply", "load 4",
                     "load 5", "load 6", "load 7"]
    applied = str(next(v for k, v in played if k == "apply"))
    assert "historySeconds: 60" in applied  # 3 backfilled rows x 0 s: the API's minimum


def test_replay_creates_the_services_before_the_history_ends(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    played: list[tuple[str, float]] = []
    exporter = SimpleNamespace(set=lambda metric, value: played.append(("load", value)))
    monkeypatch.setattr(demo, "wait_for_series", lambda url: played.append(("wait", 0)))
    monkeypatch.setattr(live, "kubectl_apply", lambda text: played.append(("apply", text)))
    run = live.DemoRun(10.0)
    args = argparse.Namespace(history_rows=5, warm_up_rows=2, row_seconds=0.0,
                              look_ahead_rows=2)

    def sample(t: float, load: float) -> live.Sample:
        return live.Sample(t, load, 1, 1, None, "")

    demo.replay(args, exporter, "http://prometheus", [1, 2, 3, 4, 5, 6, 7], run, sample)
    check_applied_while_playing(played)
    assert [s.load for s in run.samples] == [6, 7]
    assert run.created_at == 0.0  # two warm-up rows of 0 s each
    assert "history 5/5 rows" in capsys.readouterr().err


def test_wait_for_series_gives_up_with_the_reason() -> None:
    with pytest.raises(TimeoutError, match="has not scraped the demo's exporter"):
        demo.wait_for_series("http://127.0.0.1:9", timeout=0.0)


def test_demo_needs_the_local_clusters_prometheus(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PROMETHEUS_TARGETS_DIR", raising=False)
    assert main(["demo"]) == 2
    assert "PROMETHEUS_TARGETS_DIR and PROMETHEUS_URL must be set" in capsys.readouterr().err


def test_wait_for_series_returns_once_prometheus_has_the_series(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_operator.adapters import prometheus

    answers = iter([prometheus.MetricError("EmptyResult", "no series"), None])

    async def query_total(url: str, query: str) -> prometheus.Sample:
        answer = next(answers)
        if answer is not None:
            raise answer
        return prometheus.Sample(1.0)

    monkeypatch.setattr(prometheus, "query_total", query_total)
    monkeypatch.setattr("adaptive_operator.commands.demo.time.sleep", lambda seconds: None)
    demo.wait_for_series("http://prometheus", timeout=60.0)
    assert next(answers, "used up") == "used up"


def test_the_demo_applies_server_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the e2e suite applies the CRDs: a client-side apply over them warned on every run."""
    ran: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(subprocess, "run",
                        lambda args, input, **_: ran.append((args, input)))
    live.kubectl_apply("kind: X")
    assert ran == [(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-"],
                    "kind: X")]
