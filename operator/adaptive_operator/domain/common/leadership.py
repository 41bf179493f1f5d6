"""Who holds the operator's Lease: the decision behind leader election, without I/O.

One replica is active; the others wait. A holder renews well within the lease's duration; a
lease that was not renewed for a whole duration is free to take. A holder that stops on purpose
releases the lease, so a standby takes over at its next try instead of after a full duration.
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
    renewed_at: float | None  # seconds since the epoch
    duration_seconds: float


def next_action(lease: LeaseState | None, identity: str, now: float) -> LeaseAction:
    if lease is None:
        return LeaseAction.CREATE
    if lease.holder == identity:
        return LeaseAction.RENEW
    if not lease.holder or lease.renewed_at is None:
        return LeaseAction.TAKE_OVER
    if now - lease.renewed_at > lease.duration_seconds:
        return LeaseAction.TAKE_OVER
    return LeaseAction.WAIT
