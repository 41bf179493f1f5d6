"""Leader election: when a replica creates, renews, takes over or waits for the Lease."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.common.leadership import LeaseAction, LeaseState, next_action

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


class _Lease:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def read_namespaced_lease(self, name: str, namespace: str) -> None:
        raise self.error


def test_an_unreachable_api_server_is_a_lost_attempt_not_a_crash() -> None:
    """The renewal thread must survive an API server restart (a refused connection is not an
    ApiException), else the leader keeps acting on a lease nobody renews."""
    import urllib3

    from adaptive_operator.adapters import leader

    clock = [1000.0]
    elector = leader.LeaderElector.__new__(leader.LeaderElector)
    elector.namespace, elector.name, elector.identity = "ns", "lease", ME
    elector.duration, elector.retry, elector.clock = 15, 2.0, lambda: clock[0]
    elector.renewed = 995.0
    elector.api = _Lease(urllib3.exceptions.MaxRetryError(None, "/", "refused"))  # type: ignore[assignment]
    assert elector.try_acquire() is False
    assert elector.renewed_recently()
    clock[0] = 1006.0  # past two thirds of the lease: a standby may take over soon
    assert not elector.renewed_recently()
    leader.elect(elector)
    try:
        assert not leader.still_leading()
    finally:
        leader.elect(None)
    assert leader.still_leading()
