"""The healing sync's Events are said once per incident or problem; what the sync records and
reads from the body (pure, no cluster)."""

from __future__ import annotations

from dataclasses import replace

from adaptive_operator.domain.healing.ladder import Action, HealingPlan, LedgerEntry, Outcome
from adaptive_operator.domain.healing.plan import (
    LEDGER,
    action_event,
    annotations_of,
    last_written,
    not_owned_condition,
    ownership_condition,
    recorded,
    reported_events,
    scale_out_problem,
    verified_event,
    with_blocked,
    writes_ledger,
)

EXHAUSTED = HealingPlan(Action.NONE, "HealingExhausted", "gave up", exhausted=True)
HEALTHY = HealingPlan(Action.NONE, "Healthy", "all well")


def unreadable(message: str) -> HealingPlan:
    return HealingPlan(Action.NONE, "MetricsUnreadable", message)


def reasons(plans: list[HealingPlan]) -> list[list[str]]:
    reported: set[str] = set()
    said = []
    for plan in plans:
        events, reported = reported_events(plan, reported)
        said.append([event.reason for event in events])
    return said


def test_giving_up_is_said_once_per_incident() -> None:
    assert reasons([EXHAUSTED, EXHAUSTED, HEALTHY, EXHAUSTED]) == [
        ["HealingExhausted"], [], [], ["HealingExhausted"]]


def test_unreadable_metrics_are_said_once_per_distinct_problem() -> None:
    assert reasons([unreadable("a"), unreadable("a"), unreadable("b"), HEALTHY,
                    unreadable("a")]) == [
        ["HealingMetricsIgnored"], [], ["HealingMetricsIgnored"], [], ["HealingMetricsIgnored"]]


def test_a_dry_run_with_an_intent_is_said_every_time() -> None:
    intent = LedgerEntry("h-1", Action.ROLLOUT_RESTART, 0.0, Outcome.PENDING)
    plan = HealingPlan(Action.ROLLOUT_RESTART, "ErrorRateAnomaly", "would restart",
                       intent=intent, dry_run=True)
    assert reasons([plan, plan]) == [["HealingDryRun"], ["HealingDryRun"]]


PENDING = LedgerEntry("h-2", Action.EVICT_PODS, 5.0, Outcome.PENDING, pods=("web-0",))
HELPED = LedgerEntry("h-1", Action.ROLLOUT_RESTART, 0.0, Outcome.HELPED)


def test_only_a_plan_that_records_is_made_again_on_the_fresh_ledger() -> None:
    assert not writes_ledger(HEALTHY)
    assert writes_ledger(HealingPlan(Action.NONE, "Verified", "it helped", verified=HELPED))
    assert writes_ledger(HealingPlan(Action.EVICT_PODS, "CrashLoop", "evict", intent=PENDING))


def test_the_verification_then_the_intent_are_recorded_in_the_ledger() -> None:
    plan = HealingPlan(Action.EVICT_PODS, "CrashLoop", "evict", intent=PENDING,
                       verified=replace(HELPED, outcome=Outcome.DID_NOT_HELP))
    entries, ledger = recorded(plan, [HELPED])
    assert [entry.id for entry in entries] == ["h-1", "h-2"]
    assert ledger == [replace(HELPED, outcome=Outcome.DID_NOT_HELP), PENDING]
    assert recorded(HEALTHY, [HELPED]) == ([], [HELPED])
    assert with_blocked(ledger, PENDING)[-1] == replace(PENDING, outcome=Outcome.BLOCKED)
    assert len(with_blocked(ledger, PENDING)) == 2  # the intent's entry, replaced


def test_the_annotations_and_the_status_last_written_are_read_from_the_body() -> None:
    body = {"metadata": {"annotations": {LEDGER: "[]"}},
            "status": {"healing": {"state": {"reason": "Healthy"}}}}
    assert annotations_of(body) == {LEDGER: "[]"} and annotations_of({"metadata": {}}) == {}
    assert last_written(None, body) == {"state": {"reason": "Healthy"}}
    assert last_written({"state": {}}, body) == {"state": {}}  # this process's own write wins
    assert last_written(None, {"status": None}) == {}


def test_a_scale_out_is_carried_only_by_an_active_scaler() -> None:
    assert scale_out_problem("Active") is None
    assert scale_out_problem("DryRun") == ("the scaler is in DryRun mode, so it does not carry "
                                           "the scale-out")


def test_the_ownership_condition_is_only_for_an_eviction_made() -> None:
    assert ownership_condition(None, "Rollout", "web") is None
    assert ownership_condition((), "Rollout", "web") == not_owned_condition((), "Rollout", "web")
    found = ownership_condition(("impostor",), "Rollout", "web")
    assert found is not None and found.status == "True" and "impostor" in found.message


def test_an_action_and_its_verdict_are_each_said_once_whoever_says_them() -> None:
    """A leader taking over from one that acted (or verified) but did not reach the ledger says it
    again under the same key, which the API server refuses; a held-back action is said each time
    (it is tried again)."""
    intent = LedgerEntry("rollback-100", Action.ROLL_BACK, 100.0, Outcome.PENDING)
    plan = HealingPlan(Action.ROLL_BACK, "RolledBack", "rolled back to revision 2")
    done = action_event(plan, intent, "web", None, False)
    failed = action_event(plan, intent, "web", "refused", False)
    held = action_event(plan, intent, "web", "a budget", True)
    assert done == action_event(plan, intent, "web", None, False)
    assert len({done.key, failed.key}) == 2 and held.key is None
    other = action_event(plan, replace(intent, id="rollback-400"), "web", None, False)
    assert other.key != done.key
    helped = verified_event(replace(intent, outcome=Outcome.HELPED))
    assert helped.key is not None and helped.key not in {done.key, failed.key}
    assert verified_event(replace(intent, outcome=Outcome.HELPED)).key == helped.key
