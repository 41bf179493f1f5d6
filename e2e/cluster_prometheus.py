"""The test cluster's Prometheus, built from its Go module (e2e/build/prometheus) with Kubernetes
service discovery: it finds the real node's pods as a user's Prometheus finds theirs, and the
exporters of tests and the demo through a file-discovery folder.

Standard library only: `e2e/cluster` runs before the project's venv exists.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import cluster_host as host
import cluster_node as node
from cluster_build import tool
from cluster_state import STATE, command_line, http_ok, log, stop_pid, wait_for

HOME = STATE / "prometheus"
POD_JOB = "kubernetes-pods"
# How far behind its newest sample Prometheus still takes one. The e2e tests write minutes of a
# service's past through the remote-write receiver (e2e/history_seed.py), sometimes into series
# that are already scraped; kind's Prometheus has the same (e2e/kind-prometheus-values.yaml).
OUT_OF_ORDER_WINDOW = "30m"
# The flags both clusters' Prometheus run with beyond the defaults: the HTTP reload and quit
# (the chart's default) and the receiver that the seeding posts to.
EXTRA_FLAGS = ("web.enable-lifecycle", "web.enable-remote-write-receiver")


def keep(label: str, regex: str) -> dict[str, object]:
    return {"source_labels": [label], "regex": regex, "action": "keep"}


def to_label(label: str, target: str) -> dict[str, object]:
    return {"source_labels": [label], "target_label": target}


def pod_job(kubeconfig: Path | None, node_name: str | None) -> dict[str, object]:
    """Pods that ask to be scraped the usual way (annotations `prometheus.io/scrape: "true"` and
    `prometheus.io/port`), labelled as users' configurations label them: `namespace`, `pod` and
    the pod's own labels. On the local cluster (`node_name`) only Running pods of the real node
    are kept: KWOK's pods sit on other nodes, and their fake addresses are not on this machine.
    Without `kubeconfig` Prometheus runs in the cluster, as on kind (e2e/kind-prometheus-values
    .yaml holds this job), where every node runs containers."""
    meta = "__meta_kubernetes_pod_"
    ip_port = {"source_labels": [f"{meta}ip", f"{meta}annotation_prometheus_io_port"],
               "regex": r"(.+);(\d+)"}
    discovery: dict[str, object] = {"role": "pod"}
    if kubeconfig is not None:
        discovery["kubeconfig_file"] = str(kubeconfig)
    on_node = [keep(f"{meta}node_name", re.escape(node_name))] if node_name else []
    return {
        "job_name": POD_JOB,
        # An exporter's own `namespace` and `pod` labels (stand-ins for cAdvisor's and
        # kube-state-metrics') win over those of the exporter's pod.
        "honor_labels": True,
        "kubernetes_sd_configs": [discovery],
        "relabel_configs": [
            keep(f"{meta}annotation_prometheus_io_scrape", "true"),
            *on_node,
            keep(f"{meta}phase", "Running"),
            {**ip_port, "action": "keep"},
            # The annotated port, not each container port that discovery lists.
            {**ip_port, "replacement": "$1:$2", "target_label": "__address__"},
            {"regex": f"{meta}label_(.+)", "action": "labelmap"},
            to_label("__meta_kubernetes_namespace", "namespace"),  # after the pod's labels: wins
            to_label(f"{meta}name", "pod"),
        ],
    }


def config(address: str, port: int, targets: Path, kubeconfig: Path,
           node_name: str) -> dict[str, object]:
    """The configuration, as JSON (which is YAML)."""
    return {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "storage": {"tsdb": {"out_of_order_time_window": OUT_OF_ORDER_WINDOW}},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{address}:{port}"]}]},
            # Tests and the demo add exporters by dropping JSON files into this folder.
            {"job_name": "exporters",
             "file_sd_configs": [{"files": [f"{targets}/*.json"], "refresh_interval": "2s"}]},
            pod_job(kubeconfig, node_name),
        ],
    }


# Where the chart's default `prometheus.url` points, so that an install with default values
# finds this cluster's Prometheus as it would find a user's.
IN_CLUSTER_PROMETHEUS = """apiVersion: v1
kind: Namespace
metadata: {{name: monitoring}}
---
apiVersion: v1
kind: Service
metadata: {{name: prometheus-operated, namespace: monitoring}}
spec:
  ports: [{{name: web, port: 9090, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: prometheus-operated-host
  namespace: monitoring
  labels: {{kubernetes.io/service-name: prometheus-operated}}
addressType: IPv4
ports: [{{name: web, port: {port}, protocol: TCP}}]
endpoints:
- addresses: ["{address}"]
"""


def command(address: str, port: int) -> list[str]:
    return [str(tool("prometheus")), f"--config.file={HOME / 'prometheus.yml'}",
            f"--storage.tsdb.path={HOME / 'data'}", f"--web.listen-address={address}:{port}",
            *(f"--{flag}" for flag in EXTRA_FLAGS), "--storage.tsdb.retention.time=30d"]


def settings_text(address: str, port: int) -> str:
    settings = config(address, port, HOME / "targets", node.KUBECONFIG, node.NODE_NAME)
    return json.dumps(settings, indent=2)


def start(real: bool, port: int) -> dict[str, object]:
    """Start it on PORT; what the state records of it. The pod job is there without a real node
    too: it then keeps no target (KWOK's pods are all dropped)."""
    targets = HOME / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    # With a real node its pods (the operator's among them) reach Prometheus on the bridge.
    address = host.GATEWAY if real else "127.0.0.1"
    (HOME / "prometheus.yml").write_text(settings_text(address, port))
    log(f"starting Prometheus on {address}:{port}")
    out = (HOME / "prometheus.log").open("ab")
    proc = subprocess.Popen(command(address, port), stdout=out, stderr=out,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{address}:{port}"
    wait_for(lambda: http_ok(url + "/-/ready"), 60, "Prometheus to be ready")
    if real:
        node.kubectl("apply", "-f", "-",
                     stdin=IN_CLUSTER_PROMETHEUS.format(port=port, address=address))
    return {"pid": proc.pid, "url": url, "targets": str(targets)}


def refresh(recorded: dict[str, object], real: bool) -> dict[str, object]:
    """The running Prometheus of a reused cluster, started again on its port (its data kept) when
    it runs another build, other flags or another configuration than this checkout gives it: a
    cluster started before the remote-write receiver was enabled would refuse the tests'
    history seeding."""
    address, port = str(recorded["url"]).removeprefix("http://").rsplit(":", 1)
    pid = int(str(recorded["pid"]))
    config_file = HOME / "prometheus.yml"
    written = config_file.read_text() if config_file.exists() else ""
    if (command_line(pid) == command(address, int(port))
            and written == settings_text(address, int(port))):
        return recorded
    log("Prometheus runs with an older build, flags or configuration: starting it again")
    stop_pid(pid, "Prometheus")
    return start(real, int(port))
