"""Leader election: when a replica creates, renews, takes over or waits for the Lease."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.leadership import LeaseAction, LeaseState, next_action

ME = "pod-a"


@pytest.mark.parametrize(("lease", "now", "expected"), [
    pytest.param(None, 100.0, LeaseAction.CREATE, id="no-lease-yet-creates-it"),
    pytest.param(LeaseState(ME, 90.0, 15), 100.0, LeaseAction.RENEW, id="holder-renews"),
    pytest.param(LeaseState(ME, 10.0, 15), 100.0, LeaseAction.RENEW,
                 id="holder-renews-even-after-a-pause"),
    pytest.param(LeaseState("pod-b", 90.0, 15), 100.0, LeaseAction.WAIT,
                 id="fresh-lease-of-another-waits"),
    pytest.param(LeaseState("pod-b", 85.0, 15), 100.0, LeaseAction.WAIT,
                 id="exactly-at-expiry-still-waits"),
    pytest.param(LeaseState("pod-b", 84.9, 15), 100.0, LeaseAction.TAKE_OVER,
                 id="expired-lease-is-taken-over"),
    pytest.param(LeaseState("", 99.0, 15), 100.0, LeaseAction.TAKE_OVER,
                 id="released-lease-is-taken-at-once"),
    pytest.param(LeaseState("pod-b", None, 15), 100.0, LeaseAction.TAKE_OVER,
                 id="never-renewed-lease-is-free"),
])
def test_next_action(lease: LeaseState | None, now: float, expected: LeaseAction) -> None:
    assert next_action(lease, ME, now) is expected
