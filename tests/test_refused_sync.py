"""A sync whose write the fencing refused (this replica's lease on the service lapsed) is said
as such, not as an outage, and is no failure: no back-off, the lease's new holder carries on."""

from __future__ import annotations

import pytest
import urllib3
from prometheus_client import REGISTRY

from adaptive_operator.adapters import kube
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.handlers import adaptive_service, healing
from adaptive_operator.handlers.healing_observe import start_watcher
from adaptive_operator.handlers.scaling_observe import Memory

from fakes import Cluster, FixedClock, kopf_body

NOW = 1_800_000_000.0
SPEC = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 5, "mode": "Active",
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True}}


def errors(reason: str) -> float:
    labels = {"namespace": "ns", "name": "web", "reason": reason}
    return REGISTRY.get_sample_value("adaptive_reconcile_errors_total", labels) or 0.0


@pytest.mark.parametrize(("broken", "ok", "reason", "said"), [
    (kube.NotLeading(), True, "NotLeading", "sync stopped: this replica no longer holds"),
    (urllib3.exceptions.ProtocolError("reset"), False, "ApiUnavailable",
     "sync failed: the API server did not answer"),
])
async def test_a_refused_write_is_said_as_such_and_backs_nothing_off(
        broken: Exception, ok: bool, reason: str, said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    body = kopf_body({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
                      "spec": SPEC, "status": {}})
    before = {r: errors(r) for r in ("NotLeading", "ApiUnavailable")}
    runtime = Cluster(broken=broken).runtime(clock=FixedClock(NOW))
    assert await adaptive_service.guarded_sync("ns", "web", body, Memory(), runtime) == (
        15.0, ok)
    assert {r: errors(r) - before[r] for r in before} == {
        r: float(r == reason) for r in before}
    out = capsys.readouterr().out
    assert said in out and ("did not answer" in out) == (not ok)


async def test_a_refused_healing_write_is_said_as_such(
        capsys: pytest.CaptureFixture[str]) -> None:
    service = AdaptiveServiceSpec.model_validate(SPEC)
    assert service.healing is not None
    before = errors("NotLeading")
    await healing.guarded_heal("ns", "web", {"metadata": {}}, service,  # type: ignore[arg-type]
                               start_watcher(service.healing),
                               Cluster(broken=kube.NotLeading()).runtime(clock=FixedClock(NOW)))
    assert errors("NotLeading") == before + 1
    out = capsys.readouterr().out
    assert "healing sync stopped: this replica no longer holds" in out
    assert "did not answer" not in out
