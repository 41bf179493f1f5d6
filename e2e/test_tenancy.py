"""One operator, several tenants, on the real cluster and the real Prometheus.

- Healing with the default health metrics judges its own workload only: a bad rollout in one
  namespace is rolled back, and a service in another namespace does nothing (its metrics are
  its namespace's and its pods', not the cluster's sums).
- A Prometheus behind a bearer token and a tenant header is read with the credentials of a
  Secret in the service's namespace, which appear in no status, Event or log line.
- A `spec.prometheus.url` off the operator's allowlist is refused with its reason, unasked.
- With `--query-scope namespace`, a query naming no namespace reads its own namespace's series
  only, though the same metric has series in another.

KWOK runs no processes: a feeder thread serves, for every pod of the two Deployments (read from
the API server), the series the default health metrics read, labelled with the pod's namespace
and name as Kubernetes service discovery labels them; pods running the bad image answer 5xx.
Their first five minutes are seeded into Prometheus (e2e/history_seed.py) before the services
are applied, so the detectors backfill them instead of the test waiting for them.
"""

from __future__ import annotations

import base64
import http.server
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from kubernetes import client, config

from history_seed import Series, scraped_labels, seed
from metrics_source import Exporters, MetricsSource
from operator_process import OperatorProcess

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

SYNC = 2
# The versions of the Deployments' stand-ins (`Cluster.stand_in`). Where stand-ins are real
# containers, GOOD runs the workload image and BAD is an image never pulled: its pods never get
# ready, so a bad rollout stalls at its first new pod.
GOOD, BAD = "registry.example/app:1", "registry.example/app:2"
TOKEN, ORG = f"t-{uuid.uuid4().hex}", "team-a"
TAG = module_tag(__name__)
FEED = f"e2e-{TAG}-feed-{uuid.uuid4().hex[:6]}"
WARM_UP = 420  # seconds, at most, to the first verdict (the seeded history backfilled, a fit)
SEEDED_ROWS = 150  # past rows per series: the detector's 120 (rows_to_fit) and some to spare
Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (metric, labels) -> value


class TokenProxy:
    """A reverse proxy to Prometheus that answers 401 unless both credentials are sent."""

    def __init__(self, upstream: str) -> None:
        self.asked: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.asked.append(dict(self.headers))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if (self.headers.get("Authorization") != f"Bearer {TOKEN}"
                        or self.headers.get("X-Scope-OrgID") != ORG):
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                forwarded = urllib.request.Request(upstream + self.path, data=body or None,
                                                   headers={"Content-Type": self.headers.get(
                                                       "Content-Type", "")})
                with urllib.request.urlopen(forwarded, timeout=10) as answer:
                    data = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Feed:
    """Per pod: request counters (5xx for pods on the bad image), a latency histogram, CPU,
    memory and restarts, as cAdvisor, kube-state-metrics and the app would expose them."""

    def __init__(self, exporter: MetricsSource, kubeconfig: str) -> None:
        self.exporter, self.rng = exporter, np.random.default_rng(11)
        self.targets: list[str] = []  # namespaces whose Deployment `web` is fed
        self.totals: Values = {}
        self.stop = threading.Event()
        config.load_kube_config(kubeconfig)  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _add(self, values: Values, metric: str, labels: dict[str, str], amount: float) -> None:
        key = (metric, tuple(sorted(labels.items())))
        self.totals[key] = values[key] = self.totals.get(key, 0.0) + max(amount, 0.0)

    def _pod(self, ns: str, name: str, bad: bool) -> Values:
        """The pod's series after one more second: counters grow, gauges are drawn anew."""
        own = {"namespace": ns, "pod": name}
        values: Values = {}
        self._add(values, "http_requests_total", {**own, "code": "200"},
                  20 + self.rng.normal(0, 1))
        self._add(values, "http_requests_total", {**own, "code": "500"},
                  (30.0 if bad else 0.2) + self.rng.normal(0, 0.05))
        for le, share in (("0.1", 0.9), ("0.5", 0.99), ("+Inf", 1.0)):
            self._add(values, "http_request_duration_seconds_bucket", {**own, "le": le},
                      20 * share + self.rng.normal(0, 0.1))
        container = {**own, "container": "app"}
        self._add(values, "container_cpu_usage_seconds_total", container,
                  0.3 + self.rng.normal(0, 0.02))
        labels = tuple(sorted(container.items()))
        values[("container_memory_working_set_bytes", labels)] = 2e8 + self.rng.normal(0, 1e6)
        values[("kube_pod_container_status_restarts_total", labels)] = 0.0
        return values

    def past(self, ns: str, pods: list[str], scraped: dict[str, str]) -> list[Series]:
        """SEEDED_ROWS rows of the pods' series at SYNC apart (the feed adds a second's worth
        about once a second), ending where the live feed goes on: counters do not reset. Each
        with the labels Prometheus' scrape of the exporter gives it (`scraped`, then its own:
        the pod job honours an exporter's `namespace` and `pod`)."""
        rows: list[Values] = []
        for _ in range(SEEDED_ROWS):
            row: Values = {}
            for _ in range(SYNC):
                for pod in pods:
                    row.update(self._pod(ns, pod, bad=False))
            rows.append(row)
        return [Series(metric, {**scraped, **dict(labels)},
                       [row[(metric, labels)] for row in rows]) for metric, labels in rows[0]]

    def _run(self) -> None:
        while not self.stop.is_set():
            for ns in list(self.targets):
                pods = self.core.list_namespaced_pod(ns, label_selector="app=web",
                                                     _request_timeout=5).items
                for pod in pods:
                    # A listed pod has both (the client's types allow None).
                    if (pod.metadata is not None and pod.spec is not None and pod.metadata.name
                            and not pod.metadata.deletion_timestamp):
                        bad = pod.spec.containers[0].image == BAD
                        for (metric, labels), value in self._pod(
                                ns, pod.metadata.name, bad).items():
                            self.exporter.set(metric, value, dict(labels))
            self.exporter.set("e2e_tenancy_load", 10.0)
            self.stop.wait(1.0)


@pytest.fixture(scope="module")
def feed(cluster: Cluster, exporters: Exporters) -> Iterator[Feed]:
    with exporters(FEED) as exporter:
        running = Feed(exporter, cluster.kubeconfig)
        running.thread.start()
        yield running
        running.stop.set()


@pytest.fixture(scope="module")
def proxy(cluster: Cluster) -> Iterator[TokenProxy]:
    assert cluster.prometheus_url is not None
    running = TokenProxy(cluster.prometheus_url)
    yield running
    running.close()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: Cluster, feed: Feed,
             proxy: TokenProxy) -> Iterator[OperatorProcess]:
    process = OperatorProcess("tenancy", measure_coverage=False, args=(
        "--namespace", f"e2e-{TAG}-*", "--leader-election", "false",
        "--prometheus-allowed-url", proxy.url)).start()
    yield process
    process.stop()


@contextmanager
def made_namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    """A namespace of the test's own, its services deleted before it (so no finalizer waits)."""
    ns = f"{prefix}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", ns)
    yield ns
    cluster.kubectl("delete", "adaptiveservices", "--all", "-n", ns, "--timeout=30s",
                    check=False)
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    with made_namespace(cluster, f"e2e-{TAG}-other") as ns:
        yield ns


def service_yaml(extra: str, healing: bool = False) -> str:
    text = f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 4
  mode: Paused
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: 'sum(e2e_tenancy_load{{exporter="{FEED}"}})',
              targetPerReplica: 5}}]
{extra}"""
    # Healing with its defaults: no metrics given, so errorRatio, latencyP99, cpu, memory and
    # restarts, each scoped by the operator to the target's namespace and pods.
    return text + "  healing: {enabled: true, rollbackWindowSeconds: 300, verifySeconds: 16}\n" \
        if healing else text


def apply(cluster: Cluster, ns: str, text: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=text)


def status(cluster: Cluster, ns: str) -> dict[str, Any]:
    return dict(cluster.json("get", "adaptiveservice", "web", "-n", ns).get("status") or {})


def condition(cluster: Cluster, ns: str, kind: str) -> dict[str, Any]:
    found = [c for c in status(cluster, ns).get("conditions", []) if c["type"] == kind]
    return dict(found[0]) if found else {}


def image(cluster: Cluster, ns: str) -> str:
    spec: Any = cluster.json("get", "deployment", "web", "-n", ns)["spec"]
    return str(spec["template"]["spec"]["containers"][0]["image"])


def ledger(cluster: Cluster, ns: str) -> str:
    meta: Any = cluster.json("get", "adaptiveservice", "web", "-n", ns)["metadata"]
    return str((meta.get("annotations") or {}).get("adaptive.dev/healing-ledger", "[]"))


def events_text(cluster: Cluster, ns: str) -> str:
    return cluster.kubectl("get", "events", "-n", ns, "-o", "json")


def secret_yaml() -> str:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: prom-creds}}
data: {{token: {b64(TOKEN)}, org: {b64(ORG)}}}
"""


def test_credentials_from_a_secret_reach_a_prometheus_behind_a_token(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        proxy: TokenProxy) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, "web", 1))
    apply(cluster, namespace, secret_yaml())
    apply(cluster, namespace, service_yaml(f"""  prometheus:
    url: {proxy.url}
    auth:
      secretRef: {{name: prom-creds}}
      bearerTokenKey: token
      headers: {{X-Scope-OrgID: org}}
"""))
    read = wait_until(lambda: condition(cluster, namespace, "MetricsAvailable")
                      .get("status") == "True" or None, 90, "the metric read through the proxy")
    assert read
    assert status(cluster, namespace)["lastDecision"]["metrics"][0]["value"] == 10.0
    assert any(h.get("Authorization") == f"Bearer {TOKEN}" for h in proxy.asked)
    for text in (str(status(cluster, namespace)), events_text(cluster, namespace),
                 operator.log_path.read_text(errors="replace")):
        assert TOKEN not in text


def test_a_url_off_the_allowlist_is_refused_unasked(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    elsewhere = TokenProxy("http://127.0.0.1:9")  # listens, but is on no allowlist
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-",
                        stdin=deployment_yaml(cluster, "web", 1))
        apply(cluster, namespace, service_yaml(f"  prometheus: {{url: '{elsewhere.url}'}}\n"))
        refused = wait_until(lambda: condition(cluster, namespace, "MetricsAvailable")
                             .get("reason") == "PrometheusNotAllowed" or None, 90,
                             "the URL refused")
        assert refused
        message = condition(cluster, namespace, "MetricsAvailable")["message"]
        assert elsewhere.url in message and "allowlist" in message
        assert elsewhere.asked == []
    finally:
        elsewhere.close()


def deploy(cluster: Cluster, feed: Feed, ns: str, scraped: dict[str, str]) -> list[Series]:
    """The Deployment, and its pods' past: as if they had served for SEEDED_ROWS syncs. The
    feed serves them once the past is seeded, so that every live sample comes after it."""
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=deployment_yaml(cluster, "web", 2, GOOD))

    def pods() -> list[str] | None:
        items: Any = cluster.json("get", "pods", "-n", ns, "-l", "app=web")["items"]
        names = [p["metadata"]["name"] for p in items]
        return names if len(names) == 2 else None

    return feed.past(ns, wait_until(pods, 60, f"the 2 pods of {ns}/web"), scraped)


def test_errors_in_one_namespace_do_not_roll_back_another(
        cluster: Cluster, namespace: str, other_namespace: str,
        operator: OperatorProcess, feed: Feed) -> None:
    url = cluster.prometheus_url
    assert url
    scraped = scraped_labels(url, FEED)
    namespaces = (namespace, other_namespace)
    seed(url, [series for ns in namespaces for series in deploy(cluster, feed, ns, scraped)],
         SYNC)
    feed.targets.extend(namespaces)
    for ns in namespaces:
        apply(cluster, ns, service_yaml("", healing=True))
    for ns in (namespace, other_namespace):
        wait_until(lambda ns=ns: (status(cluster, ns).get("healing") or {})
                   .get("lastVerdict"), WARM_UP, f"the detector fitted in {ns}", interval=2)
    # A bad rollout in the first namespace: its errors must move nothing in the other one
    # (with cluster-wide defaults, the other's error ratio rose with them and it acted).
    cluster.kubectl("set", "image", "-n", namespace, "deployment/web", f"app={BAD}")
    wait_until(lambda: image(cluster, namespace) == cluster.stand_in_image(GOOD), 180,
               "the bad rollout rolled back")
    check_calm_and_untouched(cluster, operator, other_namespace)


def check_calm_and_untouched(cluster: Cluster, operator: OperatorProcess,
                             other_namespace: str) -> None:
    # The other service kept scoring its own, calm metrics meanwhile, and acted on nothing.
    scored = operator.log_path.read_text(errors="replace").count(other_namespace)
    wait_until(lambda: operator.log_path.read_text(errors="replace").count(other_namespace)
               > scored + 20, 120, "more syncs of the other service", interval=2)
    assert image(cluster, other_namespace) == cluster.stand_in_image(GOOD)
    assert ledger(cluster, other_namespace) == "[]"
    verdict = status(cluster, other_namespace)["healing"]["lastVerdict"]
    assert not verdict["isAnomaly"]


@pytest.fixture
def scoped_namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace the module's operator does not watch (its pattern is `e2e-TAG-*`)."""
    with made_namespace(cluster, f"e2e-{TAG}scoped") as ns:
        yield ns


def test_a_scoped_query_reads_its_own_namespace_only(
        cluster: Cluster, crds: Cluster, scoped_namespace: str, feed: Feed) -> None:
    ns = scoped_namespace
    feed.exporter.set("e2e_tenancy_scoped_load", 10.0, {"namespace": ns})
    feed.exporter.set("e2e_tenancy_scoped_load", 1000.0, {"namespace": f"{ns}-elsewhere"})
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=deployment_yaml(cluster, "web", 1))
    apply(cluster, ns, service_yaml("").replace(
        f'sum(e2e_tenancy_load{{exporter="{FEED}"}})', "sum(e2e_tenancy_scoped_load)"))
    process = OperatorProcess("tenancy-scoped", measure_coverage=False, args=(
        "--namespace", ns, "--leader-election", "false", "--query-scope", "namespace")).start()
    try:
        read = wait_until(lambda: (status(cluster, ns).get("lastDecision") or {})
                          .get("metrics"), 90, "a decision on the scoped query")
        # Unscoped, the sum would be 1010: the other namespace's series would count.
        assert read[0]["value"] == 10.0, read
    finally:
        process.stop()
