"""Who holds the operator's Lease: the decision behind leader election, without I/O.

One replica is active; the others wait. A holder renews well within the lease's duration; a
lease that was not renewed for a whole duration is free to take. A holder that stops on purpose
releases the lease, so a standby takes over at its next try instead of after a full duration.

Expiry is judged on this replica's clock only, as client-go does: the holder's `renewTime` is
written with the holder's clock, which may be minutes off ours. A lease is expired when its
record (holder and resourceVersion, which changes on every renewal) has not changed for a whole
duration since we first saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class LeaseAction(Enum):
    CREATE = "Create"  # no lease yet
    RENEW = "Renew"  # we hold it
    TAKE_OVER = "TakeOver"  # the holder let it expire or released it
    WAIT = "Wait"  # someone else holds it


@dataclass(frozen=True)
class LeaseState:
    holder: str | None  # None or "" when released
    version: str | None  # the lease's resourceVersion: changes on every write
    duration_seconds: float


@dataclass(frozen=True)
class Observation:
    """A lease record and when (on our clock) we first saw it unchanged."""

    lease: LeaseState
    since: float


def observe(previous: Observation | None, lease: LeaseState | None,
            now: float) -> Observation | None:
    """The record as we know it now: kept from before while nothing changed, else new at `now`."""
    if lease is None:
        return None
    if previous is not None and previous.lease == lease:
        return previous
    return Observation(lease, now)


def next_action(seen: Observation | None, identity: str, now: float) -> LeaseAction:
    if seen is None:
        return LeaseAction.CREATE
    lease = seen.lease
    if lease.holder == identity:
        return LeaseAction.RENEW
    if not lease.holder:
        return LeaseAction.TAKE_OVER
    if now - seen.since > lease.duration_seconds:
        return LeaseAction.TAKE_OVER
    return LeaseAction.WAIT
