"""What the healing daemon observes, turned into decide_healing's inputs; and a long stretch
of noisy, normal metrics run through the operator's own code path without a single action."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, Contribution
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.inputs import (
    LEDGER_LIMIT,
    RESTARTED_AT,
    HealthHistory,
    Incident,
    LedgerError,
    ledger_from_json,
    ledger_to_json,
    names_of,
    pod_healths,
    pod_report,
    rollback_template,
    rollout_info,
    track_incident,
    with_entry,
)
from adaptive_operator.domain.healing.ladder import (
    Action,
    HealingPolicy,
    LedgerEntry,
    Observation,
    Outcome,
    decide_healing,
)

NOW = 1_800_000_000.0
STAMP = "2027-01-15T08:00:00Z"  # = NOW


def pod(name: str = "web-a", ready: bool = True, restarts: int = 0, waiting: str | None = None,
        created: str = "2027-01-15T07:00:00Z", **meta: Any) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "creationTimestamp": created, **meta},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": str(ready)}],
                       "containerStatuses": [{"restartCount": restarts, "state": state}]}}


@pytest.mark.parametrize(("manifest", "expected"), [
    pytest.param(pod(), (True, False, 0), id="running-and-ready-is-healthy"),
    pytest.param(pod(ready=False), (False, False, 0), id="not-ready-for-an-hour"),
    pytest.param(pod(ready=False, created="2027-01-15T07:59:55Z"), (True, False, 0),
                 id="not-ready-while-starting-is-given-grace"),
    pytest.param(pod(ready=False, restarts=7, waiting="CrashLoopBackOff",
                     created="2027-01-15T07:59:55Z"), (False, True, 7),
                 id="crash-loop-counts-at-any-age"),
    pytest.param(pod(restarts=9), (True, True, 9), id="many-restarts-is-a-crash-loop"),
])
def test_pod_health(manifest: dict[str, Any], expected: tuple[bool, bool, int]) -> None:
    report = pod_report(manifest, NOW, grace_seconds=15)
    assert report is not None
    assert (report.health.ready, report.health.crash_looping, report.restarts) == expected


def test_only_a_young_pod_not_yet_ready_is_starting() -> None:
    young = "2027-01-15T07:59:55Z"
    assert pod_report(pod(ready=False, created=young), NOW, 15).health.starting  # type: ignore[union-attr]
    assert not pod_report(pod(created=young), NOW, 15).health.starting  # type: ignore[union-attr]
    assert not pod_report(pod(ready=False), NOW, 15).health.starting  # type: ignore[union-attr]
    crashing = pod(ready=False, restarts=7, waiting="CrashLoopBackOff", created=young)
    assert not pod_report(crashing, NOW, 15).health.starting  # type: ignore[union-attr]


def test_terminating_and_finished_pods_are_left_out() -> None:
    assert pod_report(pod(deletionTimestamp=STAMP), NOW, 15) is None
    done = pod()
    done["status"]["phase"] = "Succeeded"
    assert pod_report(done, NOW, 15) is None


def test_a_workloads_pod_healths_leave_out_the_pods_going_away_but_not_their_names() -> None:
    pods = [pod("web-a"), pod("web-b", deletionTimestamp=STAMP), pod("web-c", ready=False)]
    healths = pod_healths(pods, NOW, 15)
    assert [(h.name, h.ready) for h in healths] == [("web-a", True), ("web-c", False)]
    assert names_of(pods) == ("web-a", "web-b", "web-c")


def replica_set(revision: str, created: str, image: str = "app:1",
                restarted: str | None = None) -> dict[str, Any]:
    stamp = {"annotations": {RESTARTED_AT: restarted}} if restarted else {}
    return {"metadata": {"annotations": {"deployment.kubernetes.io/revision": revision},
                         "creationTimestamp": created},
            "spec": {"template": {"metadata": {"labels": {"app": "web",
                                                          "pod-template-hash": revision},
                                               **stamp},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def test_rollout_is_the_newest_revision_and_the_one_before() -> None:
    sets = [replica_set("2", "2027-01-15T07:58:00Z", "app:2"),
            replica_set("1", "2027-01-15T07:00:00Z"), replica_set("x", "2027-01-15T07:59:00Z")]
    info = rollout_info(sets)
    assert info is not None
    assert (info.current_revision, info.previous_revision) == (2, 1)
    assert info.current_started_at == NOW - 120
    assert rollout_info(sets[1:2]) is not None and rollout_info([]) is None


def test_a_restart_twin_is_skipped_and_named_as_a_twin() -> None:
    # 1 good; 2 bad; 3 = 2 restarted; 4 = 1 restarted (say, by hand); 5 = 2 restarted again.
    sets = [replica_set("1", "2027-01-15T07:00:00Z"),
            replica_set("2", "2027-01-15T07:10:00Z", "app:2"),
            replica_set("3", "2027-01-15T07:20:00Z", "app:2", restarted="t3"),
            replica_set("4", "2027-01-15T07:30:00Z", restarted="t4"),
            replica_set("5", "2027-01-15T07:40:00Z", "app:2", restarted="t5")]
    info = rollout_info(sets)
    assert info is not None
    assert (info.current_revision, info.previous_revision) == (5, 4)
    assert info.previous_twins == (1,)
    only_twins = rollout_info(sets[1:3])
    assert only_twins is not None and only_twins.previous_revision is None


def test_rollback_template_drops_the_hash_label_like_kubectl() -> None:
    sets = [replica_set("2", STAMP, "app:2"), replica_set("1", STAMP, "app:1")]
    template = rollback_template(sets, 1)
    assert template is not None
    assert template["metadata"]["labels"] == {"app": "web"}
    assert template["spec"]["containers"][0]["image"] == "app:1"
    assert sets[1]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "1"
    assert rollback_template(sets, 5) is None


entries = st.builds(
    LedgerEntry, id=st.text(min_size=1, max_size=8), action=st.sampled_from(list(Action)),
    at=st.floats(0, 2e9), outcome=st.sampled_from(list(Outcome)),
    target_revision=st.none() | st.integers(1, 99), from_revision=st.none() | st.integers(1, 99),
    pods=st.lists(st.text(min_size=1, max_size=5), max_size=3).map(tuple),
    replicas=st.none() | st.integers(1, 50))


@given(st.lists(entries, max_size=LEDGER_LIMIT))
def test_ledger_round_trips_through_the_annotation(ledger: list[LedgerEntry]) -> None:
    assert ledger_from_json(ledger_to_json(ledger)) == sorted(ledger, key=lambda e: e.at)


def test_ledger_is_bounded_to_the_newest_entries() -> None:
    many = [LedgerEntry(f"e{i}", Action.EVICT_PODS, float(i), Outcome.HELPED) for i in range(80)]
    kept = ledger_from_json(ledger_to_json(many))
    assert len(kept) == LEDGER_LIMIT and kept[0].id == "e30"


@pytest.mark.parametrize("text", [
    pytest.param("{not json", id="not-json"),
    pytest.param('[{"id": "a"}]', id="missing-fields"),
    pytest.param('[{"id": "a", "action": "Reboot", "at": 1, "outcome": "Helped"}]',
                 id="unknown-action"),
])
def test_a_damaged_ledger_is_refused(text: str) -> None:
    with pytest.raises(LedgerError):
        ledger_from_json(text)


def test_with_entry_replaces_by_id() -> None:
    pending = LedgerEntry("r-1", Action.ROLL_BACK, 1.0, Outcome.PENDING)
    helped = LedgerEntry("r-1", Action.ROLL_BACK, 1.0, Outcome.HELPED)
    assert with_entry([pending], helped) == [helped]
    assert ledger_from_json(None) == [] == ledger_from_json("")


@pytest.mark.parametrize(("series", "expected"), [
    pytest.param({"a": [None, 1.0, None, 3.0, 4.0], "b": [None, 6.0, None, 2.5, 5.0]},
                 {"a": [1.0, 1.0, 3.0, 4.0], "b": [6.0, 6.0, 2.5, 5.0]},
                 id="a-step-with-a-gap-is-made-up-not-before-the-first-row"),
    pytest.param({"a": [1.0, 2.0, 3.0, None, None, 6.0, None], "b": [1.0] * 6 + [None]},
                 {"a": [1.0, 2.0, 3.0, 2.0, 3.0, 6.0, 6.0], "b": [1.0] * 7},
                 id="a-gap-repeats-the-rows-before-it-and-one-at-the-end-is-made-up-too"),
    pytest.param({"a": [1.0] + [None] * 4 + [6.0], "b": [1.0] + [None] * 4 + [6.0]},
                 {"a": [1.0, 6.0], "b": [1.0, 6.0]},
                 id="a-gap-longer-than-a-quarter-of-the-history-is-dropped"),
    pytest.param({"a": [1.0, 2.0, None, None, None, 5.0], "b": [1.0] * 6},
                 {"a": [1.0, 2.0, 1.0, 2.0, 1.0, 5.0], "b": [1.0] * 6},
                 id="a-gap-longer-than-the-rows-before-it-repeats-them-over-and-over"),
    pytest.param({"a": [1.0, 1.0, 1.0, 2.0, 2.0], "b": [7.0, 7.0, 7.0, 8.0, 8.0]},
                 {"a": [1.0, 1.0, 1.0, 2.0, 2.0], "b": [7.0, 7.0, 7.0, 8.0, 8.0]},
                 id="a-sample-held-over-steps-is-a-row-a-step-as-the-syncs-read-it"),
    pytest.param({"a": [1.0, 1.0, 3.0], "b": [7.0, 8.0, 8.0]},
                 {"a": [1.0, 1.0, 3.0], "b": [7.0, 8.0, 8.0]},
                 id="one-metric-still-while-another-moves-is-a-fresh-row"),
    pytest.param({"a": [1.0, 2.0], "b": [7.0]}, {"a": [], "b": []},
                 id="misaligned-answers-start-empty"),
    pytest.param({"a": [None], "b": [1.0]}, {"a": [], "b": []}, id="no-complete-step"),
])
def test_history_backfill_keeps_every_complete_step(
        series: dict[str, list[float | None]], expected: dict[str, list[float]]) -> None:
    history = HealthHistory(limit=12)  # a gap of up to 3 steps is made up
    history.backfill(series)
    assert history.rows == expected


def test_history_is_bounded_and_restarts_when_the_metrics_change() -> None:
    history = HealthHistory(limit=3)
    history.backfill({"a": [1.0, 3.0, 4.0], "b": [2.0, 2.5, 5.0]})
    history.append({"a": 9.0, "b": 8.0})
    assert history.tail(2) == {"a": [4.0, 9.0], "b": [5.0, 8.0]} and len(history) == 3
    history.append({"c": 1.0})
    assert history.rows == {"c": [1.0]}


SPIKE = AnomalyVerdict(0.9, True, (Contribution("errorRatio", 0.5, 0.01, 245.0),
                                   Contribution("latency", 0.2, 0.2, 0.3)))


def calm(error_ratio: float) -> AnomalyVerdict:
    z = (error_ratio - 0.01) / 0.002
    return AnomalyVerdict(0.4, False, (Contribution("errorRatio", error_ratio, 0.3, z),))


def test_incident_stays_open_while_the_metric_deviates_and_closes_after() -> None:
    incident, verdict = track_incident(None, SPIKE, NOW, 4.0)
    assert incident is not None and incident.started_at == NOW
    ((metric, level, scale),) = incident.baselines  # one metric deviated
    assert (metric, level) == ("errorRatio", 0.01) and scale == pytest.approx(0.002)
    incident, verdict = track_incident(incident, calm(0.45), NOW + 2, 4.0)
    assert incident is not None and verdict.is_anomaly and incident.started_at == NOW
    incident, verdict = track_incident(incident, calm(0.011), NOW + 4, 4.0)
    assert incident is None and not verdict.is_anomaly
    assert track_incident(None, calm(0.011), NOW, 4.0) == (None, calm(0.011))


def test_a_long_stretch_of_noisy_normal_metrics_takes_no_action() -> None:
    """The operator's path (history, detector, incident, decide) over 5 h at a 60 s step."""
    rng = np.random.default_rng(3)
    rows = 300
    errors = 0.01 + rng.normal(0, 0.002, rows + 200)
    latency = 0.2 + 0.02 * np.sin(np.arange(rows + 200) / 240) + rng.normal(0, 0.01, rows + 200)
    history = HealthHistory(limit=4100)
    history.backfill({"errorRatio": list(errors[:200]), "latency": list(latency[:200])})
    detector = AnomalyDetector(random_state=0).fit(history.rows)
    incident: Incident | None = None
    ledger: list[LedgerEntry] = []
    for t in range(rows):
        history.append({"errorRatio": errors[200 + t], "latency": latency[200 + t]})
        if t % 100 == 0:
            detector.fit(history.rows)
        verdict = detector.score(history.tail(2101))
        incident, verdict = track_incident(incident, verdict, NOW + 60 * t, 4.0)
        plan = decide_healing(HealingPolicy(enabled=True), Observation(verdict), ledger,
                              NOW + 60 * t)
        assert plan.action is Action.NONE, (t, plan.message)
    assert json.loads(ledger_to_json(ledger)) == []


def test_rows_standing_in_for_a_gap_repeat_a_cycle_or_the_rows_before() -> None:
    history = HealthHistory(limit=8)
    history.fill(3, {})  # nothing to repeat yet
    assert len(history) == 0
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        history.append({"cyclic": value, "flat": 10 * value})
    history.fill(2, {"cyclic": 4})
    assert history.rows == {"cyclic": [1.0, 2.0, 3.0, 4.0, 5.0, 2.0, 3.0],  # a cycle earlier
                            "flat": [10.0, 20.0, 30.0, 40.0, 50.0, 40.0, 50.0]}  # the last 2
    history.fill(9, {})
    assert len(history) == 8  # held to the limit
