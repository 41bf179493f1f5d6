"""The healing decision table: every action, every rail, escalation, no loops, crash safety."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adaptive_operator.api.healing import HealingMode, HealingSpec
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, Contribution
from adaptive_operator.domain.healing.inputs import ledger_from_json, ledger_to_json
from adaptive_operator.domain.healing.ladder import (
    Action,
    HealingPolicy,
    LedgerEntry,
    LoadSignals,
    Observation,
    Outcome,
    PodHealth,
    RolloutInfo,
    decide_healing,
    detector_settings_from_spec,
    policy_from_spec,
    summarise,
)

NOW = 100_000.0
POLICY = HealingPolicy(enabled=True)
ANOMALY = AnomalyVerdict(
    0.91, True, (Contribution("errorRatio", 0.31, 0.01, 24.5), Contribution("cpu", 0.5, 0.5, 0.1))
)
CALM = AnomalyVerdict(0.4, False, (Contribution("errorRatio", 0.01, 0.01, 0.0),))
ROLLOUT = RolloutInfo(current_revision=7, previous_revision=6, current_started_at=NOW - 120)
SICK_PODS = (PodHealth("web-a", ready=False), PodHealth("web-b", crash_looping=True, ready=False),
             PodHealth("web-c"))
SATURATED = LoadSignals(load_change=0.6, latency_change=0.8, cpu_change=0.1)
WELL_PODS = (PodHealth("web-a", uid="ua"), PodHealth("web-b", uid="ub"),
             PodHealth("web-c", uid="uc"))


def observe(**changes: object) -> Observation:
    base = Observation(verdict=ANOMALY, anomaly_started_at=NOW - 30, replicas=3, max_replicas=5,
                       pods=WELL_PODS)
    return replace(base, **changes)  # type: ignore[arg-type]


def entry(action: Action, ago: float, outcome: Outcome, **more: object) -> LedgerEntry:
    return LedgerEntry(f"{action.value.lower()}-{int(NOW - ago)}", action, NOW - ago, outcome,
                       **more)  # type: ignore[arg-type]


CASES = [
    pytest.param(POLICY, observe(rollout=ROLLOUT), [], Action.ROLL_BACK, "AnomalyAfterRollout",
                 id="anomaly-right-after-rollout-rolls-back"),
    pytest.param(POLICY, observe(rollout=replace(ROLLOUT, current_started_at=NOW - 5000)), [],
                 Action.NONE, "NoRemedy", id="anomaly-long-after-rollout-only-reported"),
    pytest.param(POLICY, observe(rollout=replace(ROLLOUT, previous_revision=None)), [],
                 Action.NONE, "NoRemedy", id="first-revision-has-nothing-to-roll-back-to"),
    pytest.param(POLICY, observe(verdict=CALM, pods=SICK_PODS), [], Action.EVICT_PODS,
                 "UnhealthyPods", id="not-ready-pods-are-evicted"),
    pytest.param(POLICY, observe(load=SATURATED), [], Action.SCALE_OUT, "Saturation",
                 id="latency-up-with-load-scales-out"),
    pytest.param(POLICY, observe(load=SATURATED, replicas=5), [], Action.NONE, "NoRemedy",
                 id="saturated-at-max-replicas-cannot-scale"),
    pytest.param(POLICY, observe(load=replace(SATURATED, load_change=0.0)), [], Action.NONE,
                 "NoRemedy", id="latency-up-without-load-is-not-saturation"),
    pytest.param(POLICY, observe(verdict=CALM), [], Action.NONE, "Healthy",
                 id="healthy-service-no-action"),
    pytest.param(POLICY, observe(verdict=None), [], Action.NONE, "Healthy",
                 id="no-verdict-yet-no-action"),
    pytest.param(HealingPolicy(), observe(rollout=ROLLOUT), [], Action.NONE, "HealingDisabled",
                 id="healing-is-opt-in"),
    pytest.param(POLICY, observe(rollout=ROLLOUT, paused=True), [], Action.NONE, "HealingPaused",
                 id="pause-annotation-stops-all"),
    pytest.param(POLICY, observe(rollout=ROLLOUT, read_error="prometheus: 503"), [], Action.NONE,
                 "MetricsUnreadable", id="never-act-on-unreadable-data"),
    pytest.param(POLICY, observe(pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 100, Outcome.HELPED)], Action.NONE, "CooldownActive",
                 id="eviction-cooling-down"),
    pytest.param(replace(POLICY, max_actions_per_hour=2), observe(pods=SICK_PODS),
                 [entry(Action.SCALE_OUT, 1000, Outcome.HELPED),
                  entry(Action.ROLL_BACK, 2000, Outcome.HELPED, from_revision=3)],
                 Action.NONE, "ActionRateLimited", id="cap-on-actions-per-hour"),
    pytest.param(POLICY, observe(rollout=ROLLOUT),
                 [entry(Action.ROLL_BACK, 1500, Outcome.HELPED, from_revision=6,
                        target_revision=5)],
                 Action.NONE, "NoRemedy", id="no-rollback-to-a-revision-rolled-back-recently"),
    pytest.param(POLICY, observe(rollout=ROLLOUT),
                 [entry(Action.ROLL_BACK, 9000, Outcome.HELPED, from_revision=6)],
                 Action.ROLL_BACK, "AnomalyAfterRollout",
                 id="old-rollback-of-target-is-forgotten"),
    pytest.param(POLICY, observe(pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 400, Outcome.DID_NOT_HELP)], Action.ROLLOUT_RESTART,
                 "EscalatedToRestart", id="eviction-did-not-help-escalates-to-restart"),
    pytest.param(POLICY, observe(pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 900, Outcome.DID_NOT_HELP),
                  entry(Action.ROLLOUT_RESTART, 400, Outcome.DID_NOT_HELP)],
                 Action.NONE, "HealingExhausted", id="restart-did-not-help-gives-up"),
    pytest.param(POLICY, observe(pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 900, Outcome.DID_NOT_HELP),
                  entry(Action.EVICT_PODS, 600, Outcome.HELPED)],
                 Action.EVICT_PODS, "UnhealthyPods", id="a-success-starts-a-new-incident"),
    pytest.param(POLICY, observe(verdict=CALM, pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 100, Outcome.BLOCKED, pods=("web-a",))],
                 Action.NONE, "CooldownActive", id="eviction-a-budget-refused-waits-its-cooldown"),
    pytest.param(POLICY, observe(verdict=CALM, pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 400, Outcome.BLOCKED, pods=("web-a",))],
                 Action.EVICT_PODS, "UnhealthyPods",
                 id="eviction-a-budget-refused-is-tried-again-not-escalated"),
    pytest.param(replace(POLICY, max_actions_per_hour=1), observe(verdict=CALM, pods=SICK_PODS),
                 [entry(Action.EVICT_PODS, 400, Outcome.BLOCKED, pods=("web-a",))],
                 Action.EVICT_PODS, "UnhealthyPods",
                 id="refused-evictions-do-not-count-towards-the-hourly-cap"),
]


@pytest.mark.parametrize(("policy", "observation", "ledger", "action", "reason"), CASES)
def test_decide_table(
    policy: HealingPolicy, observation: Observation, ledger: list[LedgerEntry], action: Action,
    reason: str,
) -> None:
    plan = decide_healing(policy, observation, ledger, NOW)
    assert (plan.action, plan.reason) == (action, reason)
    assert plan.message
    assert (plan.intent is not None) == (action is not Action.NONE)


def test_rollback_plan_records_intent_with_revisions_and_explains() -> None:
    plan = decide_healing(POLICY, observe(rollout=ROLLOUT), [], NOW)
    assert plan.intent == LedgerEntry("rollback-100000", Action.ROLL_BACK, NOW, Outcome.PENDING,
                                      target_revision=6, from_revision=7)
    assert plan.acts
    assert "90s after revision 7" in plan.message
    assert "errorRatio up 0.31 vs baseline 0.01 (z=+24.5)" in plan.message
    assert "rolling back to revision 6" in plan.message


def test_eviction_respects_unavailable_cap_and_names_pods() -> None:
    plan = decide_healing(POLICY, observe(pods=SICK_PODS), [], NOW)
    assert plan.intent is not None and plan.intent.pods == ("web-a",)
    assert "2 unhealthy pod(s) (1 crash-looping, 1 not ready); evicting 1 (cap 1" in plan.message
    wider = decide_healing(replace(POLICY, max_unavailable_pods=3), observe(pods=SICK_PODS), [],
                           NOW)
    assert wider.intent is not None and wider.intent.pods == ("web-a", "web-b")


def test_scale_out_stays_within_max() -> None:
    plan = decide_healing(replace(POLICY, scale_out_step=4), observe(load=SATURATED), [], NOW)
    assert plan.intent is not None and plan.intent.replicas == 5
    assert "3 -> 5 (max 5)" in plan.message


def test_dry_run_decides_and_reports_but_never_acts() -> None:
    plan = decide_healing(replace(POLICY, dry_run=True), observe(rollout=ROLLOUT), [], NOW)
    assert plan.action is Action.ROLL_BACK and plan.dry_run and not plan.acts
    assert plan.intent is not None and plan.intent.outcome is Outcome.DRY_RUN
    assert plan.message.startswith("DryRun: ")
    again = decide_healing(replace(POLICY, dry_run=True), observe(rollout=ROLLOUT),
                           [plan.intent], NOW + 10)
    assert again.reason == "CooldownActive"


def test_recorded_intent_is_verified_never_repeated() -> None:
    first = decide_healing(POLICY, observe(rollout=ROLLOUT), [], NOW)
    assert first.intent is not None
    # The operator crashed after recording: the same observation comes back.
    during = decide_healing(POLICY, observe(rollout=ROLLOUT), [first.intent], NOW + 30)
    assert (during.action, during.reason) == (Action.NONE, "VerifyingAction")
    healed = decide_healing(POLICY, observe(verdict=CALM), [first.intent], NOW + 200)
    assert healed.action is Action.NONE and healed.reason == "Healthy"
    assert healed.verified is not None and healed.verified.outcome is Outcome.HELPED


def test_failed_verification_escalates_in_the_same_plan() -> None:
    evicted = entry(Action.EVICT_PODS, 300, Outcome.PENDING, pods=("web-a",))
    plan = decide_healing(POLICY, observe(pods=SICK_PODS), [evicted], NOW)
    assert plan.verified is not None and plan.verified.outcome is Outcome.DID_NOT_HELP
    assert plan.action is Action.ROLLOUT_RESTART
    assert "EvictPods did not help" in plan.message


def test_an_eviction_is_judged_only_once_its_replacement_has_proved_itself() -> None:
    # A StatefulSet's evicted pod comes back under the same name; while it starts it is given
    # grace, which must not count as the eviction having helped.
    evicted = entry(Action.EVICT_PODS, 300, Outcome.PENDING, pods=("db-0",))
    back = PodHealth("db-0", ready=True, starting=True)
    waiting = decide_healing(POLICY, observe(verdict=CALM, replicas=1, pods=(back,)), [evicted],
                             NOW)
    assert (waiting.action, waiting.reason, waiting.verified) == (
        Action.NONE, "VerifyingAction", None)
    assert "db-0" in waiting.message
    # Out of its grace and still not ready: the eviction did not help, and healing escalates.
    still_sick = PodHealth("db-0", ready=False)
    plan = decide_healing(POLICY, observe(verdict=CALM, replicas=1, pods=(still_sick,)), [evicted],
                          NOW + 30)
    assert plan.verified is not None and plan.verified.outcome is Outcome.DID_NOT_HELP
    assert plan.action is Action.ROLLOUT_RESTART
    # Ready for real: it helped.
    healed = decide_healing(POLICY, observe(verdict=CALM, replicas=1, pods=(PodHealth("db-0"),)),
                            [evicted], NOW + 30)
    assert healed.verified is not None and healed.verified.outcome is Outcome.HELPED


def test_an_eviction_is_judged_by_pod_uid_not_name() -> None:
    # A StatefulSet's pod is evicted as db-0 (uid-1). At verification a healthy db-0 is seen:
    # if it is still uid-1 (the eviction never took) the eviction did not help, and healing
    # escalates instead of evicting db-0 again every cooldown.
    sick = PodHealth("db-0", ready=False, uid="uid-1")
    plan = decide_healing(POLICY, observe(verdict=CALM, pods=(sick,), replicas=1), [], NOW - 300)
    assert plan.intent is not None and plan.intent.pod_uids == ("uid-1",)
    same = PodHealth("db-0", uid="uid-1")
    kept = decide_healing(POLICY, observe(verdict=CALM, pods=(same,), replicas=1),
                          [plan.intent], NOW)
    assert kept.verified is not None and kept.verified.outcome is Outcome.DID_NOT_HELP
    # Re-created under the same name with another UID and healthy: it helped.
    new = PodHealth("db-0", uid="uid-2")
    healed = decide_healing(POLICY, observe(verdict=CALM, pods=(new,), replicas=1),
                            [plan.intent], NOW)
    assert healed.verified is not None and healed.verified.outcome is Outcome.HELPED


@pytest.mark.parametrize("left", [
    pytest.param((PodHealth("db-0", uid="u0"),), id="one-of-two-missing"),
    pytest.param((), id="every-pod-missing")])
def test_an_evicted_pod_not_yet_re_created_is_still_being_verified(
        left: tuple[PodHealth, ...]) -> None:
    # db-1 (uid-1) of a 2-replica StatefulSet was evicted; it is gone (or only terminating,
    # which the observation leaves out) and not re-created yet: the eviction cannot be judged,
    # and it is certainly not "Helped".
    evicted = entry(Action.EVICT_PODS, 300, Outcome.PENDING, pods=("db-1",), pod_uids=("uid-1",))
    plan = decide_healing(POLICY, observe(verdict=CALM, pods=left, replicas=2), [evicted], NOW)
    assert (plan.action, plan.reason, plan.verified) == (Action.NONE, "VerifyingAction", None)
    assert f"{2 - len(left)} missing pod(s) of 2" in plan.message
    # Missing while the workload is troubled: judged at once (trouble is never held back).
    sick = decide_healing(POLICY, observe(pods=left, replicas=2), [evicted], NOW)
    assert sick.verified is not None and sick.verified.outcome is Outcome.DID_NOT_HELP
    # Back under its name with a new UID, ready: now it helped.
    back = (PodHealth("db-0", uid="u0"), PodHealth("db-1", uid="uid-2"))
    healed = decide_healing(POLICY, observe(verdict=CALM, pods=back, replicas=2), [evicted], NOW)
    assert healed.verified is not None and healed.verified.outcome is Outcome.HELPED


def test_the_evicted_uids_survive_the_ledger_annotation() -> None:
    evicted = entry(Action.EVICT_PODS, 300, Outcome.PENDING, pods=("db-0",), pod_uids=("u1",))
    assert ledger_from_json(ledger_to_json([evicted])) == [evicted]


def test_rollback_loop_is_refused_after_the_rollback_itself() -> None:
    # Revision 7 was rolled back to 6; now 6 misbehaves right after it came back: do not
    # roll back to 7 again.
    ledger = [entry(Action.ROLL_BACK, 300, Outcome.DID_NOT_HELP, from_revision=7,
                    target_revision=6)]
    rollout = RolloutInfo(current_revision=6, previous_revision=7, current_started_at=NOW - 300)
    plan = decide_healing(POLICY, observe(rollout=rollout, anomaly_started_at=NOW - 200), ledger,
                          NOW)
    assert plan.action is not Action.ROLL_BACK


def test_rollback_to_the_twin_of_a_revision_rolled_back_from_is_refused() -> None:
    # 7 was rolled back; 6 is a restart of 7's template: rolling back to 6 would bring 7 back.
    ledger = [entry(Action.ROLL_BACK, 900, Outcome.HELPED, from_revision=7, target_revision=5)]
    rollout = RolloutInfo(current_revision=8, previous_revision=6, current_started_at=NOW - 300,
                          previous_twins=(7,))
    plan = decide_healing(POLICY, observe(rollout=rollout, anomaly_started_at=NOW - 200), ledger,
                          NOW)
    assert plan.action is not Action.ROLL_BACK
    untwinned = RolloutInfo(current_revision=8, previous_revision=6, current_started_at=NOW - 300)
    plan = decide_healing(POLICY, observe(rollout=untwinned, anomaly_started_at=NOW - 200),
                          ledger, NOW)
    assert plan.action is Action.ROLL_BACK and plan.intent is not None
    assert plan.intent.target_revision == 6


def test_policy_from_spec_maps_camel_case_fields() -> None:
    spec = HealingSpec.model_validate({"enabled": True, "mode": "DryRun", "cooldownSeconds": 60,
                                       "maxUnavailablePods": 2, "persistence": {"k": 2, "n": 4}})
    policy = policy_from_spec(spec)
    assert policy.enabled and policy.dry_run and policy.cooldown_seconds == 60
    assert policy.max_unavailable_pods == 2
    assert spec.mode is HealingMode.DRY_RUN
    assert set(HealingSpec().metrics) == {"errorRatio", "latencyP99", "cpu", "memory", "restarts"}
    assert HealingSpec().enabled is False


def test_spec_rejects_persistence_k_above_n() -> None:
    with pytest.raises(ValueError, match=r"k must be less than or equal to n \(k=4, n=3\)"):
        HealingSpec.model_validate({"persistence": {"k": 4, "n": 3}})


def test_ledger_summary_counts_outcomes() -> None:
    ledger = [entry(Action.EVICT_PODS, 100, Outcome.HELPED),
              entry(Action.SCALE_OUT, 5000, Outcome.DID_NOT_HELP)]
    summary = summarise(ledger, NOW)
    assert (summary.total, summary.last_hour) == (2, 1)
    assert summary.by_outcome == {"Helped": 1, "DidNotHelp": 1}


def test_detector_settings_follow_the_spec() -> None:
    spec = HealingSpec.model_validate({"sensitivity": 0.8, "persistence": {"k": 3, "n": 5}})
    detector = detector_settings_from_spec(spec)
    assert (detector.sensitivity, detector.persistence_k, detector.persistence_n) == (0.8, 3, 5)
