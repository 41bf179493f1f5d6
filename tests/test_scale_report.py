"""The scale benchmark's report: what it counts of the API server's refusals and the worker
threads' calls, and that a run's rewrite keeps the notes written by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import scale_measure
import scale_table
import scale_waits

APISERVER = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
apiserver_request_total{code="200",component="apiserver",resource="adaptiveservices",\
subresource="status",verb="PATCH"} 90
apiserver_request_total{code="422",component="apiserver",resource="adaptiveservices",\
subresource="",verb="PATCH",version="v1"} 7
apiserver_request_total{code="422",component="apiserver",resource="adaptiveservices",\
subresource="",verb="PATCH",version="v1beta1"} 2
apiserver_request_total{code="404",component="apiserver",resource="pods",subresource="",\
verb="GET"} 1
"""


def _run(**figures: Any) -> dict[str, Any]:
    return {"services": 10, "sync": 15, "wall_s": 150.0, "cpu_s": 1.5, "when": "now",
            "commit": "abc", "scaling_decisions_pct": 100, "healing_decisions_pct": 100,
            "scaling_gap_p95_s": 15, "scaling_gap_max_s": 15, "healing_gap_p95_s": 15,
            "healing_gap_max_s": 15, **figures}


def test_refusals_are_the_answers_of_400_and_over_summed_over_other_labels() -> None:
    assert scale_measure.refusals(APISERVER) == {
        "refused:adaptiveservices//PATCH/422": 9.0, "refused:pods//GET/404": 1.0}


def test_the_breakdown_lists_the_newest_run_that_counted_calls_busiest_first() -> None:
    runs = [_run(**{"worker:adaptive/patch_status_per_s": 9.0}),
            _run(**{"worker:adaptive/advise_per_s": 1.5, "worker:adaptive/patch_status_per_s": 4.0,
                    "worker:prometheus/_raw_query_per_s": 0.0}),
            _run()]
    lines = scale_table.breakdown(runs)
    assert lines[3] == ("- worker calls (function/pool): `adaptive/patch_status` 4, "
                        "`adaptive/advise` 1.5")
    assert lines[4] == "- forecast fits (why): none"
    assert lines[5] == "- API server refusals (resource/subresource/verb/code): none"
    assert scale_table.breakdown([_run()]) == []


def test_a_rewrite_keeps_what_was_written_below_the_mark() -> None:
    runs = [_run()]
    first = scale_table.rewritten("", runs)
    assert first.endswith(scale_table.NOTES_MARK + "\n")
    edited = first + "- a paragraph written by hand\n"
    again = scale_table.rewritten(edited, [*runs, _run(cpu_s=3.0)])
    assert again.endswith(scale_table.NOTES_MARK + "\n- a paragraph written by hand\n")
    assert again.count("| now, abc |") == 2


def test_the_benchmark_waits_for_the_fits_to_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = iter(["adaptive_fits_pending 3.0\n", "adaptive_fits_pending 1.0\n",
                  "# HELP x\nadaptive_fits_pending 0.0\n"])
    monkeypatch.setattr(scale_waits, "own_metrics", lambda _port: next(pages))
    monkeypatch.setattr("scale_waits.time.sleep", lambda _s: None)
    said: list[str] = []
    assert scale_waits.wait_fits(1, 60.0, said.append) is not None
    assert said == ["3 fits pending; waiting", "1 fits pending; waiting"]


def test_the_wait_for_the_fits_gives_up_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale_waits, "own_metrics", lambda _port: "adaptive_fits_pending 2\n")
    said: list[str] = []
    assert scale_waits.wait_fits(1, -1.0, said.append) is None
    assert said == ["2 fits still pending after 0 s; measuring anyway"]
    monkeypatch.setattr(scale_waits, "own_metrics", lambda _port: "other 1\n")
    assert scale_waits.fits_pending(1) == 0.0


def test_a_row_says_when_it_was_measured() -> None:
    assert scale_table.settled(_run(settle_s=300.0)) == ", measured 300 s after"
    assert scale_table.settled(_run(fits_wait_s=42.4, settle_s=0.0)) == (
        ", once the start's fits drained (42 s more)")
    assert scale_table.settled(_run(fits_wait_s=None)) == ""


def test_a_row_says_whether_its_detectors_differenced_a_cycle() -> None:
    row = _run(health_cycle_s=450.0, fits=1000, fits_differenced=997)
    assert scale_table.settled(row) == (
        ", latency in a 450-s cycle: 997 of 1000 detector fits differenced it")
    assert scale_table.settled(_run(health_cycle_s=0.0, fits=3, fits_differenced=0)) == ""


def test_the_feed_draws_a_latency_sawtooth_that_the_detector_differences() -> None:
    import numpy as np

    import scale_feed
    from adaptive_operator.api.healing import HealingSpec
    from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
    from adaptive_operator.domain.healing.ladder import detector_settings_from_spec

    feed = scale_feed.Feed(None, ["a"], cycle_s=450.0)  # type: ignore[arg-type]
    times = range(0, 200 * 15, 15)  # 200 syncs of 15 s: the history 50 minutes give
    rows = {m: [feed.value("a", m, t) for t in times] for m in ("errors", "latency")}
    assert np.ptp(rows["latency"]) > 0.08  # rises from 0.1 towards 0.2 in every cycle
    detector = AnomalyDetector(detector_settings_from_spec(HealingSpec())).fit(rows)
    assert detector.differenced == {"latency": 30}
    feed.override[("a", "latency")] = 0.5  # a probe's value is what it set, no cycle
    assert abs(feed.value("a", "latency", 100.0) - 0.5) < 0.1
    flat = scale_feed.Feed(None, ["a"])  # type: ignore[arg-type]
    assert abs(flat.value("a", "latency", 449.0) - scale_feed.BASE["latency"]) < 0.05  # cycled: 0.2


def test_a_row_counts_the_healthy_verdicts_flagged_before_the_probes(tmp_path: Path) -> None:
    lines = [{"event": "healing decision", "name": name, "reason": reason,
              "timestamp": "2026-12-07T15:15:09.140037Z"}
             for name, reason in (("s1", "Healthy"), ("s1", "NoRemedy"), ("s2", "NoRemedy"),
                                  ("s2", "NoRemedy"), ("s3", "Healthy"))]
    path = tmp_path / "operator.log"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    decisions = scale_measure.DecisionLog(path)
    decisions.read()
    counts = decisions.flagged()
    assert counts == {"flagged_verdicts": 3, "flagged_services": 2, "verdicts": 5}
    assert scale_table.settled(_run(**counts)) == (
        "; before the probes 3 of 5 healing verdicts flagged a healthy service (2 services)")


def test_a_row_says_how_long_the_bad_rollouts_replica_sets_took() -> None:
    assert scale_table.settled(_run(rollout_wait_s=12.5)) == (
        "; the bad rollouts' ReplicaSets came 12.5 s after the image")


def test_the_bad_rollout_goes_only_to_services_whose_detector_is_fitted(tmp_path: Path) -> None:
    import scale

    lines = [{"event": event, "name": name, "timestamp": "2026-12-07T18:00:00Z"}
             for name in ("s0", "s1", "s2", "s3", "s4", "s5")
             for event in ("decision", "healing decision")]
    lines += [{"event": "detector fitted", "name": name, "timestamp": "2026-12-07T18:00:00Z"}
              for name in ("s0", "s1", "s5")]
    path = tmp_path / "operator.log"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    decisions = scale_measure.DecisionLog(path)
    decisions.read()
    services = [f"s{i}" for i in range(6)]
    assert scale.pick_probes(2, services, decisions) == (["s4", "s5"], ["s0", "s1"])
