"""Metrics that a test sets and Prometheus scrapes: the one place where that differs between
clusters (the `exporters` fixture in conftest.py hands these out).

- On the local test cluster (the default): the in-process `Exporter` on loopback, registered
  through Prometheus' file discovery. Fast: no pod to start.
- On any other cluster (kind in users' CI), or with ADAPTIVE_E2E_EXPORTER=pod: a pod of the
  workload image running e2e/exporter_program.py (from a ConfigMap), scraped through
  Kubernetes service discovery as the real workloads are (annotation `prometheus.io/scrape`,
  the pod's labels; `exporter=<name>` among them). The test sets its gauges through the API
  server's pod proxy, so nothing needs a route to the pod.

Either way a sample carries the label `exporter=<name>`, which is what the tests' queries select.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubernetes import client, config

from adaptive_operator.demo.exporter import Exporter
from modes import EXPORTERS

if TYPE_CHECKING:
    from conftest import Cluster

SCRIPT = Path(__file__).resolve().parent / "exporter_program.py"
IMAGE = "localhost/adaptive-workload:dev"
PORT = 8080


class MetricsSource(Protocol):
    """What the tests use of an exporter: its name (the `exporter` label) and its gauges."""

    name: str

    def set(self, metric: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        ...


def exporter_pod(name: str, placement: Mapping[str, Any]) -> dict[str, Any]:
    script = f"/opt/exporter/{SCRIPT.name}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "exporter",
            # Kubernetes discovery turns the pod's labels into the series' labels: only this
            # one, so that the labels a test sets (`app` among them) are not overridden.
            "labels": {"exporter": name},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)},
        },
        "spec": {
            **placement, "terminationGracePeriodSeconds": 1, "enableServiceLinks": False,
            "containers": [{
                "name": "exporter", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["python3", script, "--port", str(PORT)],
                "ports": [{"name": "http", "containerPort": PORT}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": PORT},
                                   "periodSeconds": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "24Mi"},
                              "limits": {"memory": "96Mi"}},
                "volumeMounts": [{"name": "script", "mountPath": "/opt/exporter"}],
            }],
            "volumes": [{"name": "script", "configMap": {"name": "exporter-script"}}],
        },
    }


def api_server(kubeconfig: str) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    """The API server's URL, TLS settings and headers, from the kubeconfig: plain HTTP calls
    through the pod proxy, the same whichever version of the kubernetes client is installed."""
    settings: Any = client.Configuration()
    config.load_kube_config(config_file=kubeconfig,  # type: ignore[no-untyped-call]
                            client_configuration=settings)
    tls = ssl.create_default_context(cafile=settings.ssl_ca_cert)
    if settings.cert_file:
        tls.load_cert_chain(settings.cert_file, settings.key_file)
    if not settings.verify_ssl:
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    headers = {"Content-Type": "application/json"}
    token = settings.api_key.get("authorization") or settings.api_key.get("BearerToken")
    if token:
        headers["Authorization"] = token
    return str(settings.host), tls, headers


class PodExporter:
    """An exporter pod in a namespace of its own, deleted with it."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.namespace = f"e2e-exporter-{uuid.uuid4().hex[:8]}"
        self.url = (f"/api/v1/namespaces/{self.namespace}/pods/exporter:{PORT}/proxy/set")
        self.server, self.tls, self.headers = api_server(cluster.kubeconfig)

    def start(self) -> PodExporter:
        self.cluster.kubectl("create", "namespace", self.namespace)
        script = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "exporter-script"},
                  "data": {SCRIPT.name: SCRIPT.read_text()}}
        manifests = {"apiVersion": "v1", "kind": "List",
                     "items": [script, exporter_pod(self.name, self.cluster.placement)]}
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-",
                             stdin=json.dumps(manifests))
        self.cluster.kubectl("wait", "-n", self.namespace, "--for=condition=Ready",
                             "--timeout=120s", "pod/exporter")
        return self

    def set(self, metric: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        # Python's JSON writes NaN and Infinity, and the exporter's JSON reads them.
        body = {"metric": metric, "value": value, "labels": dict(labels or {})}
        request = urllib.request.Request(self.server + self.url, data=json.dumps(body).encode(),
                                         headers=self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=10, context=self.tls) as response:
            response.read()

    def stop(self) -> None:
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


class Exporters:
    """Starts exporters on the session's cluster, the same way for every test."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.in_pods = EXPORTERS.is_real(cluster.local)

    @contextmanager
    def __call__(self, name: str) -> Iterator[MetricsSource]:
        """A running exporter named `name`, stopped on leaving."""
        if self.in_pods:
            running = PodExporter(self.cluster, name).start()
            try:
                yield running
            finally:
                running.stop()
            return
        with Exporter(name, self.cluster.targets_dir) as local:
            yield local
