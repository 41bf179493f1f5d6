"""The test cluster's Prometheus configuration (e2e/cluster_prometheus.py): it loads
(`promtool check config`), and the pod job's relabel rules, run by the built Prometheus itself
(`/api/v1/targets/relabel_steps`), keep only annotated Running pods of the real node, with the
labels the e2e tests and users' queries rely on. KWOK's pods must be dropped: their fake
addresses are not on this machine. With the cluster's flags and storage settings it takes the
e2e tests' remote writes of past samples (e2e/remote_write.py), out of order within its window."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from built_tools import built

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import cluster_prometheus  # a script folder (standard library only), not a package
import history_seed
import remote_write

NODE = "real-node"
# The job is plain configuration (dict[str, object]); its rules are a list.
RULES = cast(list[object], cluster_prometheus.pod_job(Path("kubeconfig"), NODE)["relabel_configs"])


def write_config(tmp: Path, settings: dict[str, object]) -> Path:
    path = tmp / "prometheus.yml"
    path.write_text(json.dumps(settings))
    return path


def generated(tmp: Path, port: int) -> dict[str, object]:
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")  # promtool checks that it exists
    (tmp / "targets").mkdir(exist_ok=True)
    return cluster_prometheus.config("127.0.0.1", port, tmp / "targets", kubeconfig, NODE)


def test_the_generated_configuration_loads(tmp_path: Path) -> None:
    config = write_config(tmp_path, generated(tmp_path, 9090))
    result = subprocess.run([str(built("prometheus", "promtool")), "check", "config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = [job["job_name"] for job in json.loads(config.read_text())["scrape_configs"]]
    assert jobs == ["prometheus", "exporters", "kubernetes-pods"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pool_ready(url: str) -> bool:
    """The job's scrape pool exists: Prometheus makes it on its first reload (within ~5 s)."""
    try:
        relabelled(url, {})
    except OSError:  # refused while it starts, 400 until the pool exists
        return False
    return True


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built Prometheus with the generated pod job's relabel rules. The pod list is static
    here (no API server): relabelling does not depend on where the labels came from."""
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    settings = generated(tmp, port)
    jobs = settings["scrape_configs"]
    assert isinstance(jobs, list)
    pods = dict(jobs[-1], static_configs=[{"targets": []}])
    del pods["kubernetes_sd_configs"]
    settings["scrape_configs"] = [pods]
    config = write_config(tmp, settings)
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(built("prometheus", "prometheus")), f"--config.file={config}",
                             f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             *(f"--{flag}" for flag in cluster_prometheus.EXTRA_FLAGS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pool_ready(url):
            assert proc.poll() is None and time.monotonic() < deadline, "Prometheus did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def relabelled(url: str, discovered: dict[str, str]) -> dict[str, str] | None:
    """The target's labels after the pod job's rules, by Prometheus; None if dropped."""
    query = urllib.parse.urlencode({"scrapePool": "kubernetes-pods",
                                    "labels": json.dumps(discovered)})
    with urllib.request.urlopen(f"{url}/api/v1/targets/relabel_steps?{query}",
                                timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert body["status"] == "success", body
    steps = body["data"]["steps"]
    assert len(steps) == len(RULES)  # the generated job's rules, all of them
    if not steps[-1]["keep"]:
        return None
    # Prometheus removes the discovery's __meta_ labels after relabelling.
    return {k: v for k, v in steps[-1]["output"].items() if not k.startswith("__meta_")}


def pod(node: str = NODE, ip: str = "10.244.0.7", phase: str = "Running",
        **annotations: str) -> dict[str, str]:
    """The labels Kubernetes discovery gives a pod's container port 8080."""
    meta = "__meta_kubernetes_pod_"
    labels = {"__address__": f"{ip}:8080", "__meta_kubernetes_namespace": "shop",
              f"{meta}name": "web-7d9f", f"{meta}ip": ip, f"{meta}node_name": node,
              f"{meta}phase": phase, f"{meta}label_app": "web",
              f"{meta}label_pod_template_hash": "7d9f",
              f"{meta}label_namespace": "spoofed"}  # a pod label may not set `namespace`
    labels.update({f"{meta}annotation_prometheus_io_{key}": value
                   for key, value in annotations.items()})
    return labels


ASKS = {"scrape": "true", "port": "9102"}


def test_an_annotated_running_pod_of_the_real_node_is_scraped_at_its_port(
        prometheus: str) -> None:
    assert relabelled(prometheus, pod(**ASKS)) == {
        "__address__": "10.244.0.7:9102", "namespace": "shop", "pod": "web-7d9f", "app": "web",
        "pod_template_hash": "7d9f"}


@pytest.mark.parametrize("discovered", [
    pod(node="kwok-node-0", ip="10.0.0.5", **ASKS),  # KWOK: a fake address, never scraped
    pod(node="real-node-2", **ASKS),  # the node's name is matched whole
    pod(),  # not annotated
    pod(scrape="false", port="9102"),
    pod(scrape="true"),  # no port
    pod(scrape="true", port="metrics"),
    pod(phase="Pending", **ASKS),
    pod(ip="", **ASKS),
], ids=["kwok-node", "other-node", "unannotated", "scrape-false", "no-port", "named-port",
        "pending", "no-ip"])
def test_other_pods_are_dropped(prometheus: str, discovered: dict[str, str]) -> None:
    assert relabelled(prometheus, discovered) is None


def served(url: str, query: str, at: float) -> list[tuple[float, float]]:
    """The samples a range selector returns at `at`."""
    params = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert body["status"] == "success", body
    return [(float(t), float(v)) for found in body["data"]["result"] for t, v in found["values"]]


def test_past_samples_are_written_even_behind_newer_ones(prometheus: str) -> None:
    now = round(time.time())
    labels = {"__name__": "e2e_remote_write", "exporter": "x"}
    remote_write.push(prometheus, [(labels, [(now - 1.0, 7.0)])])  # as if scraped just now
    past = [(now - 300.0 + 2 * i, float(i)) for i in range(150)]  # five minutes behind it
    remote_write.push(prometheus, [(labels, past)])
    assert served(prometheus, 'e2e_remote_write{exporter="x"}[6m]', now) == [
        *past, (now - 1.0, 7.0)]


def test_samples_older_than_the_window_are_refused_with_the_reason(prometheus: str) -> None:
    now = time.time()
    labels = {"__name__": "e2e_remote_write_old"}
    remote_write.push(prometheus, [(labels, [(now, 1.0)])])
    window = 30 * 60
    assert cluster_prometheus.OUT_OF_ORDER_WINDOW == "30m"
    with pytest.raises(AssertionError, match=r"\(400\): too old sample"):
        remote_write.push(prometheus, [(labels, [(now - window - 600, 1.0)])])


def test_seeded_history_is_served_one_step_apart_up_to_a_step_before_its_end(
        prometheus: str) -> None:
    end = round(time.time())
    labels = {"job": "exporters", "instance": "127.0.0.1:1", "exporter": "seeded"}
    history_seed.seed(prometheus, [history_seed.Series("e2e_seeded", labels, [1.0, 2.0, 3.0])],
                      step=2, end=end)
    assert served(prometheus, 'e2e_seeded{exporter="seeded"}[1m]', end) == [
        (end - 6.0, 1.0), (end - 4.0, 2.0), (end - 2.0, 3.0)]


@pytest.mark.parametrize(("flags", "storage", "restarted"), [
    (cluster_prometheus.EXTRA_FLAGS, True, False),
    (("web.enable-lifecycle",), True, True),  # started before the remote-write receiver
    (cluster_prometheus.EXTRA_FLAGS, False, True),  # an older configuration file
], ids=["current", "older-flags", "older-config"])
def test_a_reused_clusters_prometheus_is_started_again_only_when_out_of_date(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: tuple[str, ...], storage: bool,
        restarted: bool) -> None:
    monkeypatch.setattr(cluster_prometheus, "HOME", tmp_path)
    address, port = "10.244.0.1", 9091
    running = [arg for arg in cluster_prometheus.command(address, port)
               if not arg.startswith("--web.enable") or arg.removeprefix("--") in flags]
    monkeypatch.setattr(cluster_prometheus, "command_line", lambda pid: running)
    settings = json.loads(cluster_prometheus.settings_text(address, port))
    if not storage:
        del settings["storage"]
    (tmp_path / "prometheus.yml").write_text(json.dumps(settings, indent=2))
    calls: list[object] = []
    monkeypatch.setattr(cluster_prometheus, "stop_pid", lambda pid, what: calls.append(pid))

    def start(real: bool, port: int) -> dict[str, object]:
        calls.append(port)
        return {"pid": 2}

    monkeypatch.setattr(cluster_prometheus, "start", start)
    recorded: dict[str, object] = {"pid": 1, "url": f"http://{address}:{port}", "targets": "t"}
    refreshed = cluster_prometheus.refresh(recorded, real=True)
    assert (calls, refreshed) == (([1, port], {"pid": 2}) if restarted else ([], recorded))
