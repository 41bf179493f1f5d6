"""Where the e2e tests' exporters run (e2e/metrics_source.py): the host exporter on the local
cluster unless asked otherwise, a pod elsewhere, placed where containers run and announced to
Prometheus' Kubernetes discovery as the real workloads are."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import metrics_source  # an e2e helper module (e2e/ is a script folder, not a package)


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
