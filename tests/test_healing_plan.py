"""The healing sync's Events are said once per incident or problem (pure, no cluster)."""

from __future__ import annotations

from adaptive_operator.domain.healing.ladder import Action, HealingPlan, LedgerEntry, Outcome
from adaptive_operator.domain.healing.plan import reported_events

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
