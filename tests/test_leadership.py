"""Leader election: when a replica creates, renews, takes over or waits for the Lease."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.common.leadership import (
    LeaseAction,
    LeaseState,
    Observation,
    next_action,
    observe,
)

ME = "pod-a"


def _seen(holder: str | None, since: float, version: str = "7") -> Observation:
    return Observation(LeaseState(holder, version, 15), since)


@pytest.mark.parametrize(("seen", "now", "expected"), [
    pytest.param(None, 100.0, LeaseAction.CREATE, id="no-lease-yet-creates-it"),
    pytest.param(_seen(ME, 90.0), 100.0, LeaseAction.RENEW, id="holder-renews"),
    pytest.param(_seen(ME, 10.0), 100.0, LeaseAction.RENEW,
                 id="holder-renews-even-after-a-pause"),
    pytest.param(_seen("pod-b", 90.0), 100.0, LeaseAction.WAIT,
                 id="fresh-lease-of-another-waits"),
    pytest.param(_seen("pod-b", 85.0), 100.0, LeaseAction.WAIT,
                 id="exactly-at-expiry-still-waits"),
    pytest.param(_seen("pod-b", 84.9), 100.0, LeaseAction.TAKE_OVER,
                 id="record-unchanged-for-a-duration-is-taken-over"),
    pytest.param(_seen("", 99.0), 100.0, LeaseAction.TAKE_OVER,
                 id="released-lease-is-taken-at-once"),
])
def test_next_action(seen: Observation | None, now: float, expected: LeaseAction) -> None:
    assert next_action(seen, ME, now) is expected


def test_expiry_is_judged_by_our_clock_not_the_holders_renew_time() -> None:
    """A holder whose clock runs an hour behind keeps the lease while it renews (the record
    changes), and loses it a duration after the record stops changing, on our clock."""
    seen = None
    for step, now in enumerate((1000.0, 1010.0, 1020.0)):  # renewed every 10 s
        seen = observe(seen, LeaseState("pod-b", str(step), 15), now)
        assert next_action(seen, ME, now) is LeaseAction.WAIT
    frozen = LeaseState("pod-b", "2", 15)
    assert next_action(observe(seen, frozen, 1035.0), ME, 1035.0) is LeaseAction.WAIT
    seen = observe(seen, frozen, 1035.1)
    assert seen is not None and seen.since == 1020.0
    assert next_action(seen, ME, 1035.1) is LeaseAction.TAKE_OVER
    assert observe(seen, None, 1040.0) is None


class _Leases:
    """A Lease API answering with one lease whose renewTime is an hour in the past."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        from kubernetes import client

        self.lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name="lease", resource_version="1"),
            spec=client.V1LeaseSpec(holder_identity="pod-b", lease_duration_seconds=15,
                                    renew_time=datetime.fromtimestamp(1000.0 - 3600, tz=UTC)))
        self.replaced = 0

    def read_namespaced_lease(self, name: str, namespace: str) -> object:
        return self.lease

    def replace_namespaced_lease(self, name: str, namespace: str, body: object) -> object:
        self.replaced += 1
        return body


def test_a_skewed_holder_clock_does_not_hand_us_a_held_lease() -> None:
    from adaptive_operator.adapters import leader

    clock = [1000.0]
    leases = _Leases()
    elector = leader.LeaderElector("ns", "lease", ME, 15, 2.0, lambda: clock[0],
                                   leases)  # type: ignore[arg-type]
    assert elector.try_acquire() is False  # its renewTime is an hour old on our clock
    clock[0] = 1010.0
    assert elector.try_acquire() is False
    clock[0] = 1016.0  # unchanged for more than a duration since we first saw it
    assert elector.try_acquire() is True
    assert leases.replaced == 1 and leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == ME


class _SlowLeases(_Leases):
    """A first read that takes 4 s to answer, on the test's clock; the next ones at once."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock, self.delays = clock, [4.0]

    def read_namespaced_lease(self, name: str, namespace: str) -> object:
        self.clock[0] += self.delays.pop() if self.delays else 0.0
        return self.lease


def test_a_record_read_slowly_is_seen_when_the_read_answered() -> None:
    """The holder may have renewed while the read was on its way: its record counts as seen
    when the read returned, or a standby would judge its expiry early."""
    from adaptive_operator.adapters import leader

    clock = [1000.0]
    elector = leader.LeaderElector("ns", "lease", ME, 15, 2.0, lambda: clock[0],
                                   _SlowLeases(clock))  # type: ignore[arg-type]
    assert elector.try_acquire() is False
    assert elector.seen is not None and elector.seen.since == 1004.0
    clock[0] = 1015.5  # 15.5 s after asking, 11.5 s after the answer: not yet expired
    assert elector.try_acquire() is False
    clock[0] = 1019.5
    assert elector.try_acquire() is True


def test_writes_are_fenced_by_leadership() -> None:
    """A deposed leader's write is refused before it is sent; reads still go through."""
    import urllib3
    from kubernetes import client

    from adaptive_operator.adapters import kube

    leading = [False]
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens: a sent request fails
    configuration.retries = 0
    api = client.CoreV1Api(kube.FencedApiClient(configuration, lambda: leading[0]))
    with pytest.raises(kube.NotLeading):
        api.create_namespaced_config_map(
            "ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    with pytest.raises(kube.NotLeading):
        api.delete_namespaced_service("x", "ns")
    with pytest.raises(urllib3.exceptions.HTTPError):  # sent, not fenced
        api.read_namespaced_service("x", "ns")
    leading[0] = True
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.delete_namespaced_service("x", "ns")


class _Lease:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def read_namespaced_lease(self, name: str, namespace: str) -> None:
        raise self.error


def test_an_unreachable_api_server_is_a_lost_attempt_not_a_crash(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The renewal rounds must survive an API server restart (a refused connection is not an
    ApiException), else the leader keeps acting on a lease nobody renews. The log says what
    failed (a refusal, or a read timeout: a leader once lost its lease at a 5,000-service
    start and the log said only MaxRetryError)."""
    import urllib3

    from adaptive_operator.adapters import leader

    clock = [1000.0]
    refused = urllib3.exceptions.MaxRetryError(urllib3.HTTPConnectionPool("127.0.0.1", 9), "/",
                                               ConnectionRefusedError("refused"))
    elector = leader.LeaderElector("ns", "lease", ME, 15, 2.0, lambda: clock[0],
                                   _Lease(refused))  # type: ignore[arg-type]
    elector.renewed = 995.0
    assert elector.try_acquire() is False
    logged = capsys.readouterr()
    assert "MaxRetryError" in logged.out + logged.err and "refused" in logged.out + logged.err
    assert elector.renewed_recently()
    clock[0] = 1006.0  # past two thirds of the lease: a standby may take over soon
    assert not elector.renewed_recently()
    still_leading = leader.may_act(elector.renewed_recently)
    assert not still_leading()
    still_leading = leader.may_act(None)
    assert still_leading()


def test_the_leaders_rounds_win_keep_and_give_back_the_lease() -> None:
    from adaptive_operator.adapters import leader

    from fakes import LeaseApi

    api, clock = LeaseApi(), [1000.0]

    def rounds(identity: str) -> leader.LeaderRounds:
        return leader.LeaderRounds(leader.LeaderElector(
            "ns", "op", identity, 15, 2.0, lambda: clock[0], api))  # type: ignore[arg-type]

    first, second = rounds("pod-a"), rounds("pod-b")
    first.step()
    second.step()
    assert first.elector.renewed_recently() and not second.elector.renewed_recently()
    clock[0] += 2.0
    first.step()  # renewed
    assert first.elector.renewed == clock[0] and first.lapsed == 0
    first.release()
    assert first.elector.renewed is None and api.holder("op") == ""
    second.step()  # a released lease is taken at once
    assert second.elector.renewed_recently() and api.holder("op") == "pod-b"
    assert first.lapsed == second.lapsed == 0  # given up, not lost


def test_a_leader_that_sees_another_holder_stops_acting_at_once() -> None:
    """Paused past the lease's duration (a frozen VM), the old leader reads the new holder's
    record at its first round back: it stops acting then, not at its own deadline, and says it
    lost the lease."""
    from adaptive_operator.adapters import leader

    from fakes import LeaseApi

    api, paused, running = LeaseApi(), [1000.0], [1000.0]
    old = leader.LeaderRounds(leader.LeaderElector(
        "ns", "op", "pod-a", 15, 2.0, lambda: paused[0], api))  # type: ignore[arg-type]
    new = leader.LeaderRounds(leader.LeaderElector(
        "ns", "op", "pod-b", 15, 2.0, lambda: running[0], api))  # type: ignore[arg-type]
    old.step()
    new.step()
    running[0] += 16.0  # the record unchanged for a duration on pod-b's clock
    new.step()
    assert api.holder("op") == "pod-b"
    paused[0] += 2.0  # the old leader's clock: within its deadline still
    assert old.elector.renewed_recently()
    old.step()
    assert not old.elector.renewed_recently() and old.lapsed == 1
