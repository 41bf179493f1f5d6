"""Coupled scaling in the operator: the upstreams read, the graph checked, status and Events
(no cluster, no Prometheus: the two reads are replaced by a small in-memory namespace)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import REGISTRY

from adaptive_operator.adapters.prometheus import MetricError, RangeSeries, Sample, Target
from adaptive_operator.adapters.prometheus_access import PrometheusAccess
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.scaling import coupled_status, upstreams
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.coupling import CouplingState
from adaptive_operator.domain.scaling.forecast_history import (
    MetricHistory,
    aligned_view,
    capacity_rows,
    grid_shift,
)
from adaptive_operator.handlers import coupled, forecasts
from adaptive_operator.handlers.warmup import WarmUps

from coupling_traces import bursty, follower
from fakes import Cluster

PERIOD = 2.0
HISTORY = 600


def spec_of(name: str, upstreams: list[str], metric: str = "rps") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": name}, "maxReplicas": 50, "syncPeriodSeconds": int(PERIOD),
        "metrics": [{"name": metric, "query": f"sum(rate({name}[1m]))", "targetPerReplica": 10}],
        "predictive": {"enabled": True, "lookAheadSeconds": 4, "historySeconds": HISTORY},
    }
    if upstreams:
        spec["coupling"] = [{"service": u, "metric": "rps"} for u in upstreams]
    return spec


def body(name: str, upstreams: list[str], status: dict[str, Any] | None = None) -> Any:
    return {"metadata": {"name": name}, "spec": spec_of(name, upstreams),
            "status": status or {}}


class Namespace:
    """AdaptiveServices by name, and each service's query answering from a trace."""

    def __init__(self, bodies: dict[str, Any], loads: dict[str, list[float | None]]) -> None:
        self.bodies = bodies
        self.loads = loads
        self.row = 0
        self.forecasters: dict[str, forecasts.ServiceForecaster] = {}  # each service's own
        self.couplings: dict[str, coupled.CouplingMemory] = {}  # each service's own

    async def read_service(self, plural: str, namespace: str, name: str) -> Any:
        return self.bodies.get(name)

    def __getattr__(self, name: str) -> Any:
        """The WorkloadReader's other reads, which coupling never makes: missing, as without
        this method (which only tells the type checker that the rest of the port is there)."""
        raise AttributeError(name)

    async def total(self, url: Target, query: str, max_age: float) -> Sample:
        value = self.loads[query][self.row]
        if value is None:
            raise MetricError("NoData", "no data")
        return Sample(value)

    async def series(self, url: Target, query: str, start: float, end: float,
                         step: float) -> RangeSeries:
        count = int((end - start) / step) + 1
        return RangeSeries(start, step, [None] * count, {})


@pytest.fixture
def namespace() -> Namespace:
    up = bursty(400, 31)
    space = Namespace({"frontend": body("frontend", [])},
                      {"sum(rate(frontend[1m]))": up,
                       "sum(rate(api[1m]))": follower(up, 3.0, 3, 0.02, 32)})
    return space


async def sync(space: Namespace, uid: str, spec: AdaptiveServiceSpec,
               row: int) -> coupled_status.Coupled | None:
    space.row = row
    own = space.loads["sum(rate(api[1m]))"][row]
    forecaster = space.forecasters.setdefault(
        uid, forecasts.ServiceForecaster(WarmUps(ranges=space)))
    forecast = await forecaster.update(
        spec, "http://prom", (MetricReading("rps", own, 10),), (), row * PERIOD)
    await forecaster.settled()  # its warm-up (backfill, first fit) ends before the next sync
    memory = space.couplings.setdefault(uid, coupled.CouplingMemory())
    return await coupled.coupled_for("ns", "api", memory, spec, forecast, row * PERIOD,
                                     forecaster, space, space, space, PrometheusAccess())


def check_upstream_learnt(last: coupled_status.Coupled) -> None:
    """Its upstream's lag and ratio, and a coupled forecast better than its own."""
    assert last.condition.reason == "CoupledBetterThanOwnForecast"
    relation = last.status.upstreams[0]
    assert relation.lag_seconds == 3 * PERIOD and relation.ratio == pytest.approx(3.0, rel=0.05)
    assert last.status.summary == "frontend: Trusted" and last.floor is not None


def check_floored_and_shown(last: coupled_status.Coupled) -> None:
    """Its floor raises a lower count (not a higher one) and its forecast goes to status."""
    assert coupled_status.raised(1, "the forecast", last) == (last.floor, last.source)
    assert coupled_status.raised(1000, "the forecast", last) == (1000, "the forecast")
    fields = coupled_status.status_fields({}, last)["coupling"]
    assert fields["trusted"] is True and len(fields["forecast"]) == 2  # 4 s ahead


async def test_a_follower_learns_its_upstream_and_is_floored_ahead(namespace: Namespace) -> None:
    spec = AdaptiveServiceSpec.model_validate(spec_of("api", ["frontend"]))
    found = [await sync(namespace, "u1", spec, row) for row in range(300)]
    last = found[-1]
    assert last is not None and last.status.trusted
    check_upstream_learnt(last)
    check_floored_and_shown(last)
    assert not found[10] or not found[10].status.trusted  # young: not yet
    namespace.couplings.pop("u1")
    namespace.forecasters.pop("u1")


@pytest.mark.parametrize(("bodies", "reason"), [
    pytest.param({"frontend": body("frontend", ["api"])}, "CouplingCycle", id="cycle"),
    pytest.param({}, "UpstreamNotFound", id="missing"),
    pytest.param({"frontend": {**body("frontend", []), "spec": spec_of("frontend", [], "cpu")}},
                 "UpstreamMetricNotFound", id="no-such-metric"),
])
async def test_a_coupling_that_cannot_hold_is_refused_with_a_reason(
        namespace: Namespace, bodies: dict[str, Any], reason: str) -> None:
    namespace.bodies = bodies
    spec = AdaptiveServiceSpec.model_validate(spec_of("api", ["frontend"]))
    found = await sync(namespace, "u2", spec, 0)
    assert found is not None and found.floor is None
    assert (found.condition.status, found.condition.reason) == ("False", reason)
    assert found.status.summary == "Refused"
    if reason == "CouplingCycle":
        assert "api -> frontend -> api" in found.condition.message


async def test_an_uncoupled_service_shows_nothing_and_clears_what_was_shown() -> None:
    spec = AdaptiveServiceSpec.model_validate(spec_of("api", []))
    memory = coupled.CouplingMemory()
    assert await coupled.coupled_for("ns", "api", memory, spec, None, 0.0, None,
                                     QueryBatcher(), RangeBatcher(), Cluster(),
                                     PrometheusAccess()) is None
    old = {"coupling": {"trusted": True}, "conditions": [{"type": "CouplingTrusted"}]}
    assert coupled_status.status_fields(old, None) == {"coupling": None}
    assert coupled_status.status_fields({}, None) == {}
    assert [c.reason for c in coupled_status.conditions(old, None)] == ["NotCoupled"]
    assert coupled_status.conditions({}, None) == []


def test_the_upstream_forecast_is_read_from_its_status_on_this_grid() -> None:
    points = [{"offsetSeconds": 2, "p50": 10}, {"offsetSeconds": 4, "p50": 12},
              {"offsetSeconds": 8, "p50": 20}]
    trusted_own = {"forecast": {"reliable": True, "metric": "rps", "forecast": points}}
    assert upstreams.upstream_path(body("f", [], trusted_own), "rps", 2.0) == (10.0, 12.0)
    untrusted = {"forecast": {"reliable": False, "metric": "rps", "forecast": points}}
    assert upstreams.upstream_path(body("f", [], untrusted), "rps", 2.0) == ()
    chained = {"coupling": {"trusted": True, "forecast": [{"offsetSeconds": 2, "p50": 7}]}}
    assert upstreams.upstream_path(body("f", [], chained), "rps", 2.0) == (7.0,)
    hostile = [{"offsetSeconds": "x"}, {"offsetSeconds": 2, "p50": -1}, "junk",
               {"offsetSeconds": 2, "p50": float("nan")}, {"offsetSeconds": 3.1, "p50": 1}]
    assert upstreams.on_grid(hostile, 2.0) == ()


def test_an_upstream_with_a_damaged_spec_has_no_query() -> None:
    assert upstreams.upstream_query({"spec": {"maxReplicas": "many"}}, "rps") is None


def test_an_upstream_history_is_read_on_the_downstream_rows() -> None:
    down = MetricHistory.backfilled(10.0, PERIOD, 4, [1.0, 2.0, 3.0, 4.0, 5.0])  # keeps 2..5
    up = MetricHistory.backfilled(14.0, PERIOD, capacity_rows(HISTORY, PERIOD), [7.0, 8.0])
    shift = grid_shift(down, up)
    assert shift == -2  # down's row 2 (t = 14) is up's row 0
    view = aligned_view(up, shift, down.total)
    assert list(view) == [None, None, 7.0, 8.0, None]
    assert view[-3] == 7.0 and view[1:3] == [None, 7.0]
    with pytest.raises(IndexError):
        view[5]
    own = aligned_view(down, 0, down.total)
    assert list(own) == [None, 2.0, 3.0, 4.0, 5.0]  # row 0 fell out of the ring: a gap
    published = {"forecast": {"reliable": True, "metric": "rps",
                              "forecast": [{"offsetSeconds": 2, "p50": 9}]}}
    found = upstreams.upstream_input(down, up, body("api", [], published), "rps", PERIOD)
    assert list(found.history) == list(view) and found.forecast == (9.0,)


def test_coupling_waits_for_the_own_history() -> None:
    spec = AdaptiveServiceSpec.model_validate(spec_of("web", ["api"]))
    waiting = coupled_status.waiting_for_own_history(spec)
    assert waiting.condition.reason == "OwnHistoryUnavailable" and waiting.floor is None
    assert waiting.status.summary == "Refused" and "rps's history" in waiting.condition.message


def test_a_changed_verdict_is_an_event_and_the_gauges_follow() -> None:
    spec = AdaptiveServiceSpec.model_validate(spec_of("api", ["frontend"]))
    cycle = coupled_status.refused(spec, "CouplingCycle", "a cycle")
    shown = {"conditions": [{"type": "CouplingTrusted", "status": "False",
                             "reason": "CouplingCycle"}]}
    events = [coupled_status.verdict_event(status, cycle) for status in ({}, shown)]
    assert [(e.type, e.reason) for e in events if e is not None] == [("Warning", "CouplingCycle")]
    assert coupled_status.verdict_event(shown, None) is None
    metrics = "adaptive_coupling_trusted", "adaptive_coupling_floor_replicas"
    labels = {"namespace": "ns", "name": "api"}
    coupled.report("ns", "api", cycle)
    assert REGISTRY.get_sample_value(metrics[0], labels) == 0
    coupled.report("ns", "api", None)
    assert REGISTRY.get_sample_value(metrics[0], labels) is None


def test_a_gap_in_the_coupled_forecast_ends_what_status_shows_of_it() -> None:
    """A row without a forecast (an upstream reading missing at its lag) is not written as 0,
    which a service further down the chain would read as a forecast of no load."""
    spec = AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "api"}, "maxReplicas": 10,
        "metrics": [{"name": "rps", "query": "q", "targetPerReplica": 10}],
        "predictive": {"enabled": True},
        "coupling": [{"service": "frontend", "metric": "rps"}]})
    state = CouplingState(trusted=True, reason="ok", forecast=(30.0, 32.0, math.nan, 35.0))
    shown = coupled_status.reported(spec, state, 4, 15.0).status.forecast
    assert [(p.offset_seconds, p.p50) for p in shown] == [(15.0, 30.0), (30.0, 32.0)]
    body = {"spec": {"metrics": [{"name": "rps"}]},
            "status": {"coupling": {"trusted": True, "forecast": [
                p.model_dump(by_alias=True) for p in shown]}}}
    assert upstreams.upstream_path(body, "rps", 15.0) == (30.0, 32.0)
