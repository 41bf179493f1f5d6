"""Fixtures of the e2e suite: the cluster, a namespace per test, and a dump when a test fails.

The cluster is the one in $KUBECONFIG when that is set (users run this suite on kind), else the
local test cluster from `e2e/cluster up` (upstream Kubernetes, KWOK nodes, Prometheus).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

import xdist_groups
from cluster_lock import ClusterLock, flocked
from metrics_source import Exporters
from modes import STAND_INS

from support import wait_until

HERE = Path(__file__).resolve().parent
DUMPS = HERE.parent / ".state" / "e2e-dumps"
# The locks the workers of one pytest-xdist run share (cluster_lock.py).
LOCKS = HERE.parent / ".state" / "e2e-locks"
CLUSTER_LOCK = ClusterLock(LOCKS)

# Pods run on the local cluster's real node (containerd) only when they ask for it: the node is
# tainted, so the suite's other pods stay on KWOK nodes, whose images need not exist. A real pod
# carries this toleration and this node selector (and local images: imagePullPolicy Never).
REAL_NODE_LABEL = "adaptive.dev/real-node"
REAL_NODE_TOLERATION = {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true",
                        "effect": "NoSchedule"}
REAL_NODE_SELECTOR = {REAL_NODE_LABEL: "true"}
REAL_NODE_FIXTURES = {"real_node", "runs_containers"}  # the tests of real pods ask for one

# Stand-ins: pods that only have to exist (a Deployment's, a StatefulSet's, a migration Job's),
# whose containers no test talks to. On the local cluster they are KWOK's fake pods: images that
# need not exist, nothing pulled, status faked (Ready at once, Job pods complete), so many are
# cheap. On kind, or with ADAPTIVE_E2E_STAND_INS=real on the local cluster (which shows the suite
# passing as it would on kind), they are real containers of the e2e workload image, never pulled,
# that idle (Ready at once: no probe) or, in a Job, exit 0.
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
FAKE_IMAGE = "registry.example/app:1"
WORKLOAD_IMAGE = "localhost/adaptive-workload:dev"
# A real stand-in idles in sh, PID 1: SIGTERM ends it at once; SIGUSR1 makes it crash, and crash
# again at every restart (the mark is kept in an emptyDir, which outlives the container): a real
# crash loop, which the tests of healing ask for (`Cluster.crash_loop`).
CRASH_MARK = "/crash/loop"
IDLE = (f"test -e {CRASH_MARK} && exit 1; trap 'exit 0' TERM; "
        f"trap 'touch {CRASH_MARK}; exit 1' USR1; sleep infinity & wait")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    prometheus_url: str | None
    targets_dir: Path | None  # where exporters register with Prometheus (local cluster only)
    local: bool
    started_here: bool = False  # this session's own local cluster: it may take it down

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> dict[str, Any]:
        """kubectl's JSON output: an object whose shape the caller knows (kind and query)."""
        data: dict[str, Any] = json.loads(self.kubectl(*args, "-o", "json"))
        return data

    def wait_established(self, crd: str) -> None:
        """Waits until a CRD serves its kind. `kubectl wait --for=condition=Established` fails
        at once, instead of waiting, while a CRD just applied has no conditions yet."""
        def established() -> bool:
            status: Any = self.json("get", "crd", crd).get("status") or {}
            return any(c["type"] == "Established" and c["status"] == "True"
                       for c in status.get("conditions") or [])

        wait_until(established, 60, f"crd/{crd} to be established")

    # What differs between the local cluster and kind, for tests of real pods, sits below.
    @property
    def placement(self) -> dict[str, Any]:
        """Pod spec fields that put a real pod where containers run: on the local cluster the
        tainted real node; on kind, any node."""
        if not self.local:
            return {}
        return {"nodeSelector": dict(REAL_NODE_SELECTOR),
                "tolerations": [dict(REAL_NODE_TOLERATION)]}

    @property
    def real_stand_ins(self) -> bool:
        """Whether stand-ins are real containers: always off the local cluster, else when asked."""
        return STAND_INS.is_real(self.local)

    def stand_in_image(self, image: str = FAKE_IMAGE) -> str:
        """The image that a stand-in written with `image` runs."""
        return WORKLOAD_IMAGE if self.real_stand_ins else image

    def stand_in(self, name: str = "app", image: str | None = None, *,
                 exits: bool = False) -> dict[str, Any]:
        """The pod spec (one container, and where it goes) of a pod that only has to exist;
        `image` (FAKE_IMAGE if None) names its version on KWOK. `exits`: a Job's pod, which
        succeeds at once."""
        if not self.real_stand_ins:
            return kwok_pod(name, image or FAKE_IMAGE)
        container: dict[str, object] = {
            "name": name, "image": WORKLOAD_IMAGE, "imagePullPolicy": "Never", "command": ["true"],
            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}}
        spec = {**self.placement, "terminationGracePeriodSeconds": 1, "enableServiceLinks": False,
                "containers": [container]}
        if not exits:
            container.update(command=["sh", "-c", IDLE],
                             volumeMounts=[{"name": "crash", "mountPath": "/crash"}])
            spec["volumes"] = [{"name": "crash", "emptyDir": {}}]
        return spec

    def crash_loop(self, namespace: str, pod: str, image: str | None = None) -> None:
        """Makes a stand-in crash-loop: KWOK's by writing the crash loop into its status (KWOK
        leaves it there; `image`: its version), a real one by making it crash at every start."""
        if self.real_stand_ins:
            self.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", "kill -USR1 1")
            return
        patch = {"status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "CrashLoopBackOff"}],
            "containerStatuses": [{"name": "app", "image": image or FAKE_IMAGE, "imageID": "",
                                   "ready": False, "restartCount": 7,
                                   "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
        self.kubectl("patch", "pod", pod, "-n", namespace, "--subresource=status",
                     "--type=merge", "-p", json.dumps(patch))

    def pod_url(self, pod: dict[str, Any], port: int) -> str:
        """A URL of a real pod's port from where the tests run: its address on the local
        cluster's bridge, else a `kubectl port-forward` kept until the session ends."""
        if self.local:
            return f"http://{pod['status']['podIP']}:{port}"
        meta = pod["metadata"]
        return _port_forward(self.kubeconfig, meta["namespace"], meta["name"], port)


def kwok_pod(name: str = "app", image: str = FAKE_IMAGE) -> dict[str, Any]:
    """The pod spec of a fake pod, on a KWOK node: KWOK fakes its status, nothing is pulled."""
    return {"tolerations": [dict(KWOK_TOLERATION)], "containers": [{"name": name, "image": image}]}


_FORWARDS: dict[tuple[str, str, int], tuple[subprocess.Popen[str], str]] = {}


def _port_forward(kubeconfig: str, namespace: str, pod: str, port: int) -> str:
    key = (namespace, pod, port)
    if key not in _FORWARDS or _FORWARDS[key][0].poll() is not None:
        process = subprocess.Popen(
            ["kubectl", "--kubeconfig", kubeconfig, "port-forward", "-n", namespace,
             f"pod/{pod}", f":{port}"], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:NNNN -> PORT"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward said: {line!r}"
        _FORWARDS[key] = (process, f"http://127.0.0.1:{match.group(1)}")
    return _FORWARDS[key][1]


def pytest_sessionfinish() -> None:
    for process, _ in _FORWARDS.values():
        process.terminate()


def parse_exports(text: str) -> dict[str, str]:
    exports = {}
    for line in text.splitlines():
        match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
        if match:
            exports[match.group(1)] = match.group(2)
    return exports


def local_cluster_running() -> bool:
    status = subprocess.run([str(HERE / "cluster"), "status"], capture_output=True, text=True)
    return status.returncode == 0


def start_local_cluster() -> dict[str, str]:
    result = subprocess.run([str(HERE / "cluster"), "up"], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        pytest.exit(f"e2e/cluster up failed (exit {result.returncode})", returncode=1)
    exports = parse_exports(result.stdout)
    path = exports["PATH"].replace("$PATH", os.environ.get("PATH", ""))
    os.environ.update(exports, PATH=path)
    return exports


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    if os.environ.get("KUBECONFIG") and not os.environ.get("PROMETHEUS_TARGETS_DIR"):
        prom = os.environ.get("PROMETHEUS_URL")
        return Cluster(os.environ["KUBECONFIG"], prom, None, local=False)
    # CI starts its own cluster before the suite and says so.
    disposable = os.environ.get("ADAPTIVE_E2E_CLUSTER_DISPOSABLE") == "1"
    # Each pytest-xdist worker runs this: one starts the cluster, the others then reuse it.
    with flocked(LOCKS / "cluster-up.lock"):
        was_running = local_cluster_running()
        exports = start_local_cluster()
    return Cluster(exports["KUBECONFIG"], exports["PROMETHEUS_URL"],
                   Path(exports["PROMETHEUS_TARGETS_DIR"]), local=True,
                   started_here=disposable or not was_running)


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    """A Kubernetes API client on the cluster, for a module's reads and watches."""
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=cluster.kubeconfig)
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The product's CRDs, installed once per session (helm installs in tests skip them)."""
    root = HERE.parent / "crds"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(root))
    for path in sorted(root.glob("*.yaml")):
        cluster.wait_established(path.stem)
    return cluster


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> str:
    """The name of the node that runs real containers (tests of real pods need one)."""
    items = cluster.json("get", "nodes", "-l", f"{REAL_NODE_LABEL}=true")["items"]
    assert isinstance(items, list)
    if not items:
        pytest.skip("no real node in this cluster (started with ADAPTIVE_REAL_NODE=0?)")
    return str(items[0]["metadata"]["name"])


@pytest.fixture(scope="session")
def runs_containers(cluster: Cluster, request: pytest.FixtureRequest) -> Cluster:
    """The cluster, where pods' containers really run: kind's nodes, or the local cluster's
    real node (without one, e.g. ADAPTIVE_REAL_NODE=0, the test is skipped, not timed out)."""
    if cluster.local:
        request.getfixturevalue("real_node")
    return cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "last: runs after every other test (it may take the session's cluster down)")
    config.addinivalue_line(
        "markers", "disrupts_cluster: runs alone on the cluster (e.g. restarts the API server)")


def is_e2e(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).parents


# First: pytest-xdist's own hook (on each worker) reads the mark to name the test's group, and
# a plain conftest hook runs after it, too late (the e2e tests then went to both workers, and one
# module's operator ran twice, on both).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` (e.g. one that takes the session's cluster down) run after all
    others. Under pytest-xdist (`--dist loadgroup`) each e2e module goes to the worker of its
    group (xdist_groups.py), beside the unit tests on the others."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
    # Every e2e item is a test function (no doctests there): what has `fixturenames`.
    e2e = [item for item in items if isinstance(item, pytest.Function) and is_e2e(item)]
    # Real stand-ins on the local cluster put every module's pods on the one real node.
    everywhere = STAND_INS.asked() == STAND_INS.real
    tests = [xdist_groups.E2ETest(Path(str(item.path)).stem,
                               everywhere or bool(REAL_NODE_FIXTURES & set(item.fixturenames)),
                               item.get_closest_marker("last") is not None) for item in e2e]
    for item, group in zip(e2e, xdist_groups.groups(tests), strict=True):
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Refuses to run e2e tests that pytest-xdist would spread outside their groups: two copies
    of a module's operator fight over its services; and a test marked `last` beside others."""
    if node.config.getoption("dist") != "loadgroup":
        return
    problem = xdist_groups.misplaced(ids)
    if problem:
        pytest.exit(problem, returncode=4)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Each e2e test (its fixtures' setup and teardown included) shares the cluster with the
    other group's tests, or has it to itself when it disrupts the cluster."""
    if not is_e2e(item):
        yield
        return
    disrupts = item.get_closest_marker("disrupts_cluster") is not None
    with CLUSTER_LOCK.exclusive() if disrupts else CLUSTER_LOCK.shared():
        yield


@pytest.fixture(scope="session")
def local_cluster(cluster: Cluster) -> Cluster:
    """Tests of e2e/cluster itself (its processes, file discovery, KWOK) run on it only."""
    if not cluster.local:
        pytest.skip("a test of the local test cluster (e2e/cluster) itself")
    return cluster


@pytest.fixture(scope="session")
def exporters(cluster: Cluster) -> Exporters:
    """Metrics a test sets and Prometheus scrapes, on any cluster (metrics_source.py)."""
    return Exporters(cluster)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[FAILED] = report.failed


FAILED = pytest.StashKey[bool]()


def module_tag(module_name: str) -> str:
    """A short tag per test module: its namespaces share the prefix `e2e-<tag>-`, so the
    operator a module starts watches only that module's namespaces (`--namespace e2e-<tag>-*`)."""
    base = module_name.rsplit(".", 1)[-1].removeprefix("test_")
    return re.sub(r"[^a-z0-9]", "", base.lower())[:14]


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:30].strip("-")
    ns = f"e2e-{module_tag(request.module.__name__)}-{name}-{uuid.uuid4().hex[:5]}"
    yield from namespace_lifetime(cluster, request, ns)


def namespace_lifetime(cluster: Cluster, request: pytest.FixtureRequest, ns: str) -> Iterator[str]:
    """A namespace fixture's body: `ns` created, yielded, dumped if the test failed, deleted."""
    cluster.kubectl("create", "namespace", ns)
    yield ns
    if request.node.stash.get(FAILED, False):
        dump_namespace(cluster, ns)
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def dump_namespace(cluster: Cluster, ns: str) -> None:
    """Everything in the namespace and its events, to a file and to the test's output."""
    DUMPS.mkdir(parents=True, exist_ok=True)
    parts = [
        cluster.kubectl("get", "all,configmaps,events,adaptiveservices,shardsets", "-n", ns,
                        "-o", "wide", check=False),
        cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False),
        cluster.kubectl("get", "all,adaptiveservices,shardsets", "-n", ns, "-o", "yaml",
                        check=False),
    ]
    text = "\n---\n".join(parts)
    (DUMPS / f"{ns}.txt").write_text(text)
    print(f"\n===== dump of namespace {ns} (also in {DUMPS / (ns + '.txt')}) =====\n{text[:20000]}")
