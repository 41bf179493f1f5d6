"""Where the e2e tests' exporters run (e2e/metrics_source.py): the host exporter on the local
cluster unless asked otherwise, a pod elsewhere, placed where containers run and announced to
Prometheus' Kubernetes discovery as the real workloads are."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import metrics_source  # an e2e helper module (e2e/ is a script folder, not a package)


@dataclass
class FakeCluster:
    local: bool


@pytest.mark.parametrize(("local", "asked", "pods"), [
    (True, None, False), (True, "host", False), (True, "pod", True),
    (False, None, True), (False, "host", True),  # no file discovery to register with off ours
])
def test_exporters_run_as_pods_off_the_local_cluster_or_when_asked(
        monkeypatch: pytest.MonkeyPatch, local: bool, asked: str | None, pods: bool) -> None:
    if asked is None:
        monkeypatch.delenv(metrics_source.MODE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(metrics_source.MODE_VARIABLE, asked)
    cluster: Any = FakeCluster(local)
    assert metrics_source.pod_mode(cluster) is pods


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics_source.MODE_VARIABLE, "kind")
    cluster: Any = FakeCluster(True)
    with pytest.raises(ValueError, match="host or pod"):
        metrics_source.pod_mode(cluster)


def test_the_exporter_pod_is_scraped_and_placed_where_containers_run() -> None:
    placement = {"nodeSelector": {"adaptive.dev/real-node": "true"}}
    pod = metrics_source.exporter_pod("e2e-x", placement)
    assert pod["metadata"]["labels"] == {"exporter": "e2e-x"}  # the tests' queries select it
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true",
                                              "prometheus.io/port": str(metrics_source.PORT)}
    assert pod["spec"]["nodeSelector"] == placement["nodeSelector"]
    (container,) = pod["spec"]["containers"]
    assert container["imagePullPolicy"] == "Never"
    assert container["command"][1] == f"/opt/exporter/{metrics_source.SCRIPT.name}"
    assert metrics_source.SCRIPT.exists()
