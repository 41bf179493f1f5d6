"""What one healing sync writes and says, from its observation: pure functions, no I/O.

The handler observes (health rows into the watcher, pods, rollout, load), then `decide` reads the
ledger and the pause from the annotations and asks the ladder; the handler writes the ledger
before acting, carries the action out, and writes `healing_status` when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from adaptive_operator.api.base import STATUS_NAME_LENGTH, truncated
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.common.conditions import Condition, merge_conditions
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict
from adaptive_operator.domain.healing.inputs import LedgerError, ledger_from_json, with_entry
from adaptive_operator.domain.healing.ladder import (
    HealingPlan,
    LedgerEntry,
    Observation,
    Outcome,
    decide_healing,
    policy_from_spec,
    summarise,
)

LEDGER = "adaptive.dev/healing-ledger"
PAUSED = "adaptive.dev/healing-paused"
# The verdict's numbers in status are refreshed this often when nothing else changed (the
# live score is the `adaptive_anomaly_score` gauge): with 1,000 services, a status write is an
# API call and a watch event for kopf, and they were most of the API server's load.
VERDICT_REFRESH_SECONDS = 300.0


def decide(healing: HealingSpec, observation: Observation, annotations: dict[str, str],
           now: float) -> tuple[HealingPlan, list[LedgerEntry]]:
    """The plan on the ledger and pause of these annotations; a damaged ledger acts never."""
    observation = replace(observation, paused=annotations.get(PAUSED) == "true")
    try:
        ledger = ledger_from_json(annotations.get(LEDGER))
    except LedgerError as err:
        ledger = []
        observation = Observation(observation.verdict, read_error=str(err))
    return decide_healing(policy_from_spec(healing), observation, ledger, now), ledger


def annotations_of(body: Mapping[str, Any]) -> dict[str, str]:
    """The object's annotations (the ledger and the pause among them)."""
    return dict(body.get("metadata", {}).get("annotations") or {})


def writes_ledger(plan: HealingPlan) -> bool:
    """The plan records a verification or an intent: it is to be made again on the ledger read
    fresh (the watched body may not show this process's last entry yet)."""
    return plan.verified is not None or plan.intent is not None


def with_blocked(ledger: list[LedgerEntry], intent: LedgerEntry) -> list[LedgerEntry]:
    """The ledger with the intent a budget refused, as Blocked."""
    return with_entry(ledger, replace(intent, outcome=Outcome.BLOCKED))


def recorded(plan: HealingPlan,
             ledger: list[LedgerEntry]) -> tuple[list[LedgerEntry], list[LedgerEntry]]:
    """The entries the plan records (its verification, then its intent), and the ledger with
    them."""
    entries = [entry for entry in (plan.verified, plan.intent) if entry is not None]
    for entry in entries:
        ledger = with_entry(ledger, entry)
    return entries, ledger


def scale_out_problem(mode: str) -> str | None:
    """The scaler carries the scale-out (the ledger entry is its floor): it scales nothing in
    DryRun or Paused mode."""
    if mode == "Active":
        return None
    return f"the scaler is in {mode} mode, so it does not carry the scale-out"


def verified_event(entry: LedgerEntry) -> Event:
    helped = entry.outcome is Outcome.HELPED
    # Keyed by the entry: a leader that takes over before the verdict reached the ledger
    # verifies again, and is not heard twice.
    return Event("Normal" if helped else "Warning",
                 "HealingVerified" if helped else "HealingDidNotHelp",
                 f"{entry.action} {entry.id}: {entry.outcome}", f"verified:{entry.id}")


def action_event(plan: HealingPlan, intent: LedgerEntry, target: str, problem: str | None,
                 blocked: bool) -> Event:
    """What became of the action: held back by a budget, failed, or done."""
    if blocked:
        return Event("Warning", "HealingActionFailed",
                     f"{intent.action} of {target} held back: {problem}; tried again "
                     f"after the cooldown ({plan.message})")
    if problem:
        return Event("Warning", "HealingActionFailed",
                     f"{intent.action} of {target} failed: {problem}; it will be "
                     f"verified, not repeated ({plan.message})", f"failed:{intent.id}")
    return Event("Normal", plan.reason, f"{intent.action}: {plan.message}", f"done:{intent.id}")


def reported_events(plan: HealingPlan, reported: set[str]) -> tuple[list[Event], set[str]]:
    """Events for what was only decided (a dry run; giving up and unreadable metrics once per
    incident or problem), and what has been reported after them."""
    events: list[Event] = []
    if plan.dry_run and plan.intent is not None:
        events.append(Event("Normal", "HealingDryRun", plan.message))
    for once in (_exhausted, _unreadable):
        event, reported = once(plan, reported)
        events.extend([event] if event is not None else [])
    return events, reported


def _exhausted(plan: HealingPlan, reported: set[str]) -> tuple[Event | None, set[str]]:
    """Giving up, said once per incident (a healthy sync ends the incident)."""
    if plan.exhausted and "exhausted" not in reported:
        return Event("Warning", "HealingExhausted", plan.message), reported | {"exhausted"}
    if not plan.exhausted and plan.reason == "Healthy":
        return None, reported - {"exhausted"}
    return None, reported


def _unreadable(plan: HealingPlan, reported: set[str]) -> tuple[Event | None, set[str]]:
    """Once per distinct problem: what was ignored, and that nothing was done on it."""
    unreadable = f"unreadable:{plan.message}"
    if plan.reason != "MetricsUnreadable":
        return None, {key for key in reported if not key.startswith("unreadable:")}
    if unreadable not in reported:
        return Event("Warning", "HealingMetricsIgnored", plan.message), reported | {unreadable}
    return None, reported


def verdict_status(verdict: AnomalyVerdict, now: float) -> dict[str, Any]:
    return {"score": round(verdict.score, 3), "isAnomaly": verdict.is_anomaly,
            "time": timestamp(now),
            "contributions": [{"metric": c.metric, "value": c.value, "baseline": c.baseline,
                               "z": round(c.z, 2)} for c in verdict.contributions]}


def last_action(old: dict[str, Any], plan: HealingPlan, entry: LedgerEntry) -> dict[str, Any]:
    """The action shown in status; the reason and message stay those it was taken for."""
    previous = old.get("lastAction") or {}
    same = previous.get("id") == entry.id
    message, reason = truncated(plan.message), truncated(plan.reason, STATUS_NAME_LENGTH)
    return {"id": entry.id, "action": entry.action.value,
            "reason": previous.get("reason", reason) if same else reason,
            "message": previous.get("message", message) if same else message,
            "outcome": entry.outcome.value, "time": timestamp(entry.at)}


# The condition in status.healing that names the pods an eviction left alone because they are
# not shown to be the target's (its selector matched them); the Event says so too.
NOT_OWNED = "PodsNotOwned"
NAMED_PODS = 3  # pods a message names; the rest are counted


def not_owned_condition(pods: tuple[str, ...], kind: str, name: str) -> Condition:
    """PodsNotOwned, of the last eviction made: True naming (a few of) the pods left alone."""
    if not pods:
        return Condition(NOT_OWNED, "False", "AllPodsOwned",
                         f"the last eviction's pods were all {kind} {name}'s")
    named = ", ".join(sorted(pods)[:NAMED_PODS])
    more = f" and {len(pods) - NAMED_PODS} more" if len(pods) > NAMED_PODS else ""
    return Condition(NOT_OWNED, "True", "NotOwnedByTarget",
                     f"{len(pods)} pod(s) left alone by the last eviction: not shown to be owned "
                     f"by {kind} {name} (their ownerReferences do not lead to it): {named}{more}")


def ownership_condition(not_owned: tuple[str, ...] | None, kind: str,
                        name: str) -> Condition | None:
    """PodsNotOwned of the eviction made this sync; None when none was made."""
    return None if not_owned is None else not_owned_condition(not_owned, kind, name)


def last_written(written: dict[str, Any] | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """status.healing as this process last wrote it; until it writes, the watched body's (which
    may not show the last write yet)."""
    if written is not None:
        return written
    return dict((body.get("status") or {}).get("healing") or {})


def healing_status(old: dict[str, Any], verdict: AnomalyVerdict | None, plan: HealingPlan,
                   ledger: list[LedgerEntry], now: float,
                   ownership: Condition | None = None) -> dict[str, Any]:
    """status.healing after this sync, from the one last written; `ownership`, the
    PodsNotOwned condition of an eviction made this sync (kept as it was without one)."""
    new = dict(old)
    if ownership is not None:
        new["conditions"] = merge_conditions(old.get("conditions") or [], [ownership], now, None)
    new["state"] = {"reason": truncated(plan.reason, STATUS_NAME_LENGTH),
                    "message": truncated(plan.message),
                    "time": timestamp(now)}
    if verdict is not None:
        new["lastVerdict"] = verdict_status(verdict, now)
    entry = plan.intent or plan.verified
    if entry is not None:
        new["lastAction"] = last_action(old, plan, entry)
    summary = summarise(ledger, now)
    new["ledger"] = {"total": summary.total, "lastHour": summary.last_hour,
                     "byOutcome": summary.by_outcome}
    return new


def _age(verdict: dict[str, Any], now: float) -> float:
    try:
        written = datetime.strptime(str(verdict.get("time")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return float("inf")
    return now - written.replace(tzinfo=UTC).timestamp()


def differs(old: dict[str, Any], new: dict[str, Any], now: float) -> bool:
    """Changed beyond the verdict's numbers, or those five minutes old: a status write per sync
    (the score moves every sync) would be noise, and with 1,000 services, each write is an
    API call and a watch event for kopf to process."""
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        verdict = status.get("lastVerdict") or {}
        state = (status.get("state") or {}).get("reason")  # its message counts down: noise
        return {**status, "lastVerdict": verdict.get("isAnomaly"), "state": state}
    if strip(old) != strip(new):
        return True
    # Only a verdict's numbers age, and only a newer verdict refreshes them. Without one (the
    # detector not fitted yet, or never: too few rows) there is nothing to refresh: taken as
    # infinitely old, such a service wrote its status every sync (130 writes/s while 5,000
    # services' first fits ran one at a time); and so did one showing the verdict of the
    # process before a restart, until its own detector was fitted.
    verdict = old.get("lastVerdict") or {}
    fresher = (new.get("lastVerdict") or {}).get("time") != verdict.get("time")
    return bool(verdict) and fresher and _age(verdict, now) >= VERDICT_REFRESH_SECONDS
