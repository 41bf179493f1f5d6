"""Leader election on a coordination.k8s.io Lease, so that several replicas run one active operator.

Writes use the Lease's resourceVersion: when two replicas race for a free lease, the API server
accepts one write and refuses the other (409), so there is never more than one leader. Expiry is
judged by our own clock from when we first saw the lease's current record, never by comparing the
holder's renewTime with our clock. Every other write to the cluster is fenced by `may_act`
(the client `run` builds with `kube.fenced_client`), so a deposed leader's late writes are
refused before they are sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableSequence
from datetime import UTC, datetime

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator import logs
from adaptive_operator.adapters.kube import API_ERRORS, TimedApiClient, Timeout, configuration
from adaptive_operator.adapters.telemetry import LEADER
from adaptive_operator.domain.common.leadership import (
    LeaseAction,
    LeaseState,
    Observation,
    next_action,
    observe,
)

log = logs.get(__name__)
DURATION_SECONDS = 15
# A Lease request's (connect, read) bound. A renewal is a read (with --lease-shards, the round's
# one list) and then a write, and counts only when both are done within the renewal deadline (two
# thirds of the duration: 10 s), so each gets less than half of it: 4.5 s, 9 s the two. A Lease
# request is tiny; one not answered by then is a failed renewal, tried again at the next round
# (2 s later), rather than holding the renewal round past the deadline (the replica's writes are
# fenced by the deadline anyway, but it could neither step down nor, as a standby, take over).
LEASE_REQUEST_TIMEOUT: Timeout = (1.5, 3.0)


def lease_api(timeout: Timeout = LEASE_REQUEST_TIMEOUT) -> client.CoordinationV1Api:
    """The Lease API over the loaded credentials, each request bounded by `timeout` and never
    tried again within a round (the next round is the retry, and a resent request would take a
    second bound out of the deadline)."""
    return client.CoordinationV1Api(TimedApiClient(configuration(urllib3.Retry(0)), timeout))


def renew_deadline(duration: float) -> float:
    """Seconds a holder acts for after its last renewal: two thirds of the lease's duration."""
    return duration * 2 / 3


def renewed_within(renewed: float | None, now: float, duration: float) -> bool:
    """Whether a lease last renewed at `renewed` (None: not held) is still held for sure."""
    return renewed is not None and now - renewed < renew_deadline(duration)


def renewal_in(renewals: MutableSequence[float], slot: int) -> float | None:
    """The renewal time kept in `slot` (NaN there: not held)."""
    value = renewals[slot]
    return None if math.isnan(value) else value


def _micro_time(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


class LeaderElector:
    def __init__(self, namespace: str, name: str, identity: str,
                 duration_seconds: int = DURATION_SECONDS, retry_seconds: float = 2.0,
                 clock: Callable[[], float] | None = None,
                 api: client.CoordinationV1Api | None = None,
                 renewals: MutableSequence[float] | None = None, slot: int = 0) -> None:
        import time

        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration = duration_seconds
        self.retry = retry_seconds
        self.clock = clock or time.time
        self.api = api or lease_api()
        # When this replica last held the lease for sure (NaN: not held), in slot `slot` of
        # `renewals`: its own list, or memory shared with the process that reads the fences
        # (`lease_process`), so that a lease given up is seen as such before it is released.
        self._renewals, self._slot = renewals if renewals is not None else [math.nan], slot
        self.seen: Observation | None = None  # the lease's record and when we first saw it

    @property
    def renewed(self) -> float | None:
        return renewal_in(self._renewals, self._slot)

    @renewed.setter
    def renewed(self, value: float | None) -> None:
        self._renewals[self._slot] = math.nan if value is None else value

    def renewed_recently(self) -> bool:
        """Whether the lease was held within the renewal deadline: after a pause (a frozen VM, a
        stopped process, a partition) a standby may have taken over, so the old leader must not
        act before it has renewed again or stepped down."""
        return renewed_within(self.renewed, self.clock(), self.duration)

    @property
    def renew_deadline(self) -> float:
        return renew_deadline(self.duration)

    def _read(self) -> client.V1Lease | None:
        try:
            lease: client.V1Lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return lease

    @staticmethod
    def _state(lease: client.V1Lease | None) -> LeaseState | None:
        if lease is None:
            return None
        spec = lease.spec
        version = lease.metadata.resource_version if lease.metadata else None
        if spec is None:
            return LeaseState(None, version, 15.0)
        return LeaseState(spec.holder_identity, version, float(spec.lease_duration_seconds or 15))

    def _spec(self, now: float, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self.duration,
            acquire_time=_micro_time(now), renew_time=_micro_time(now),
            lease_transitions=transitions)

    def saw(self, lease: client.V1Lease | None, now: float) -> client.V1Lease | None:
        """Keep what was read of the lease by someone else (None: it does not exist)."""
        self.seen = observe(self.seen, self._state(lease), now)
        return lease

    def write(self, lease: client.V1Lease | None, action: LeaseAction, now: float) -> None:
        """Create, renew or take over the lease as read (resourceVersion-conditional: a write
        over a record that changed since is refused with 409)."""
        if action is LeaseAction.CREATE or lease is None:
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name),
                                  spec=self._spec(now, 0))
            self.api.create_namespaced_lease(self.namespace, body)
            self.renewed = now
            return
        spec = lease.spec or client.V1LeaseSpec()
        if action is LeaseAction.RENEW:
            spec.renew_time = _micro_time(now)
            lease.spec = spec
        else:
            lease.spec = self._spec(now, (spec.lease_transitions or 0) + 1)
        self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        self.renewed = now

    def try_acquire(self) -> bool:
        """One attempt to become or stay the leader; False on losing any race."""
        try:
            lease = self._read()
            now = self.clock()  # seen when the read returned (see `ShardedLeases.step`)
            self.saw(lease, now)
            action = next_action(self.seen, self.identity, now)
            if action is LeaseAction.WAIT:  # another replica's record: not ours, whatever we think
                self.renewed = None
                return False
            self.write(lease, action, now)
            return True
        except ApiException as err:
            log.info("lease attempt lost", lease=self.name, status=err.status)
            return False
        except API_ERRORS as err:  # the API server is away: not the leader until it answers
            log.warning("lease attempt failed", lease=self.name, error=logs.error_text(err))
            return False

    def release(self) -> None:
        """Step down on purpose so that a standby takes over at once (when the API server does
        not answer in time, the lease expires instead)."""
        try:
            lease = self._read()
            if lease is not None and lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as err:
            log.warning("could not release the lease", lease=self.name, status=err.status)
        except API_ERRORS as err:
            log.warning("could not release the lease", lease=self.name, error=logs.error_text(err))


class LeaderRounds:
    """The leader's one Lease as rounds, one attempt to become or stay the leader each, which
    `lease_process.rounds` runs in a process of its own (as it runs `ShardedLeases`)."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector, self.retry = elector, elector.retry
        self.took = 0.0  # seconds the last round took
        self.lapsed = 0  # times the leadership was lost without being given up
        self._held = elector.renewed_recently()

    def step(self) -> None:
        start = self.elector.clock()
        self.elector.try_acquire()
        self.took = self.elector.clock() - start
        held = self.elector.renewed_recently()
        if held and not self._held:
            log.info("became the leader", lease=self.elector.name, identity=self.elector.identity)
        elif self._held and not held:
            self.lapsed += 1
            # The lease process's side of it; the operator's logs "lost the leadership" as
            # it stops acting (one error per loss, not two).
            log.warning("leader lease lapsed", lease=self.elector.name,
                        identity=self.elector.identity, round_seconds=round(self.took, 3))
        self._held = held

    def release(self) -> None:
        give_up(self.elector)


def give_up(elector: LeaderElector) -> None:
    elector.renewed = None  # first: no write under this lease goes out from now on
    elector.release()  # when not released (the API server did not answer), it expires instead


def may_act(fence: Callable[[], bool] | None) -> Callable[[], bool]:
    """May this process act now? Always without an election; with one, only while `fence` says
    the lease was renewed within the deadline (checked right before every write to a workload)."""
    LEADER.set(1 if fence is None else 0)  # with an election: not until it is won
    return fence if fence is not None else (lambda: True)
