"""The test cluster's real node: containerd with runc and CNI's bridge, a kubelet, kube-proxy and
CoreDNS, all host processes, beside the KWOK nodes.

The node is tainted: only pods that tolerate `adaptive.dev/real-node=true:NoSchedule` (and select
it by its label) run here; the others stay on KWOK nodes, whose images need not exist.
Standard library only: `e2e/cluster` runs before the project's venv exists.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cluster_host as host
from cluster_build import tool
from cluster_state import (
    CACHE,
    STATE,
    State,
    alive,
    cluster_dir,
    http_ok,
    log,
    run,
    section,
    spawn,
    stop_pid,
    wait_for,
)

NODE_NAME = "real-node"
NODE_LABEL = "adaptive.dev/real-node"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
PAUSE_IMAGE = "localhost/adaptive-pause:dev"
CNI_NETWORK = "adaptive-pods"
HOME = STATE / "node"
SOCKET = HOME / "containerd.sock"
# containerd's content and snapshots outlive `down` (imports of the images take a minute); the
# containers do not: `up` and `down` remove them.
CONTAINERD_ROOT = CACHE / "containerd"
IMPORTED = CONTAINERD_ROOT / "imported.json"  # image ref -> the tarball it came from
KUBECONFIG = STATE / "kubeconfig"
ORDER = ("containerd", "kubelet", "kube-proxy", "coredns")  # start order; stopped in reverse


def enabled() -> bool:
    """ADAPTIVE_REAL_NODE=0 starts KWOK nodes only: one kubelet per machine (private clusters)."""
    return os.environ.get("ADAPTIVE_REAL_NODE", "1") != "0"


def check_host() -> None:
    if os.geteuid() != 0:
        raise SystemExit("[cluster] the real node needs root (ADAPTIVE_REAL_NODE=0: KWOK only)")
    for exe in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "conntrack"):
        if not any((Path(d) / exe).exists() for d in os.environ["PATH"].split(":")):
            raise SystemExit(f"[cluster] the real node needs {exe} (scripts/setup installs it)")
    if not Path("/usr/lib/cni/bridge").exists():
        raise SystemExit("[cluster] the real node needs containernetworking-plugins")
    if Path(f"/sys/class/net/{host.BRIDGE}").exists():
        raise SystemExit(f"[cluster] a real node already runs on this machine (the bridge "
                         f"{host.BRIDGE} exists): one machine runs one; ADAPTIVE_REAL_NODE=0 "
                         "starts a cluster without it (or `down` the other one)")
    if len(str(SOCKET)) > 100:
        raise SystemExit(f"[cluster] {SOCKET} is too long for a unix socket: shorten the state dir")


def pki() -> Path:
    """kwokctl's certificates: its CA signs the admin client certificate we use everywhere."""
    return cluster_dir() / "pki"


def apiserver_args() -> list[dict[str, object]]:
    """What the API server needs for a real node: the kubelet's client certificate (logs,
    exec) and addresses that work for a node named by nothing a resolver knows."""
    return [{"key": "kubelet-client-certificate", "value": str(pki() / "admin.crt")},
            {"key": "kubelet-client-key", "value": str(pki() / "admin.key")},
            {"key": "kubelet-preferred-address-types", "value": "InternalIP,Hostname"}]


def containerd_config() -> str:
    return f"""\
version = 2
# Snapshotters this machine cannot use (they only log errors).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
root = "{CONTAINERD_ROOT}"
state = "{HOME / 'containerd' / 'state'}"
[grpc]
  address = "{SOCKET}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{HOME / 'containerd' / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM refuses to lower oom_score_adj: without this runc fails every sandbox.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{HOME / 'cni'}"
"""


def cni_config() -> str:
    bridge = {
        "type": "bridge", "bridge": host.BRIDGE, "isGateway": True, "hairpinMode": True,
        "ipMasq": False,  # pods reach the host and each other, nothing beyond
        "ipam": {"type": "host-local", "dataDir": str(HOME / "cni-ipam"),
                 "ranges": [[{"subnet": host.POD_CIDR, "gateway": host.GATEWAY}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    return json.dumps({"cniVersion": "1.0.0", "name": CNI_NETWORK,
                       "plugins": [bridge, portmap]}, indent=2)


def kubelet_config() -> str:
    return f"""\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 controllers plus a cgroup2 mount; containerd 1.6 cannot tell the
# kubelet its cgroup driver (the kubelet logs that RuntimeConfig is unimplemented).
failCgroupV1: false
cgroupDriver: cgroupfs
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://{SOCKET}
address: {host.GATEWAY}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki() / 'ca.crt'}}}
authorization: {{mode: Webhook}}
clusterDNS: [{DNS_IP}]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
registerWithTaints:
- {{key: {NODE_LABEL}, value: "true", effect: NoSchedule}}
podLogsDir: {HOME / 'pod-logs'}
volumePluginDir: {HOME / 'volume-plugins'}
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
"""


def kube_proxy_config() -> str:
    return f"""\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {KUBECONFIG}}}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {host.POD_CIDR}
bindAddress: {host.GATEWAY}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts on the pod bridge only; the host's other interfaces and sysctls stay as they are.
nodePortAddresses: [{host.POD_CIDR}]
iptables: {{localhostNodePorts: false}}
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"""


def corefile() -> str:
    return f"""\
.:53 {{
    bind {host.GATEWAY}
    errors
    ready {host.GATEWAY}:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {KUBECONFIG}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
}}
"""


# CoreDNS runs on the host: the Service's endpoint is the host's address on the pod bridge.
DNS_OBJECTS = f"""\
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}
spec:
  clusterIP: {DNS_IP}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {{kubernetes.io/service-name: kube-dns}}
addressType: IPv4
ports:
- {{name: dns, port: 53, protocol: UDP}}
- {{name: dns-tcp, port: 53, protocol: TCP}}
endpoints:
- addresses: ["{host.GATEWAY}"]
  conditions: {{ready: true}}
"""


def write_configs() -> None:
    (HOME / "cni").mkdir(parents=True, exist_ok=True)
    (HOME / "containerd.toml").write_text(containerd_config())
    (HOME / "cni" / "10-adaptive.conflist").write_text(cni_config())
    (HOME / "kubelet.yaml").write_text(kubelet_config())
    (HOME / "kube-proxy.yaml").write_text(kube_proxy_config())
    (HOME / "Corefile").write_text(corefile())


def argv(name: str) -> list[str]:
    commands = {
        "containerd": ["containerd", "--config", str(HOME / "containerd.toml")],
        "kubelet": [str(tool("kubelet")), f"--config={HOME / 'kubelet.yaml'}",
                    f"--kubeconfig={KUBECONFIG}", f"--root-dir={HOME / 'kubelet'}",
                    f"--hostname-override={NODE_NAME}", f"--node-ip={host.GATEWAY}",
                    f"--node-labels={NODE_LABEL}=true"],
        "kube-proxy": [str(tool("kube-proxy")), f"--config={HOME / 'kube-proxy.yaml'}"],
        "coredns": [str(tool("coredns")), "-conf", str(HOME / "Corefile")],
    }
    return commands[name]


def ctr(*args: str, check: bool = True) -> str:
    return run("ctr", "--address", str(SOCKET), "--namespace", "k8s.io", *args,
               check=check).stdout


def import_images(images: list[tuple[str, Path]]) -> None:
    """Each cached tarball into containerd, unless that very tarball is in already."""
    imported = json.loads(IMPORTED.read_text()) if IMPORTED.exists() else {}
    present = set(ctr("images", "ls", "-q").split())
    for ref, tarball in images:
        if ref in present and imported.get(ref) == str(tarball):
            continue
        started = time.monotonic()
        ctr("images", "import", str(tarball))
        imported[ref] = str(tarball)
        IMPORTED.write_text(json.dumps(imported, indent=2))
        log(f"imported {ref} in {time.monotonic() - started:.1f}s")
    if PAUSE_IMAGE not in {ref for ref, _ in images}:
        raise SystemExit(f"[cluster] e2e/images/build made no {PAUSE_IMAGE} (the pod sandbox)")


def remove_containers() -> int:
    """Kill every container through containerd (each shim exits and cleans up after itself),
    then remove them all, so the next kubelet starts from none. How many there were."""
    listing = ctr("tasks", "ls", check=False).splitlines()[1:]
    tasks = [line.split()[0] for line in listing if line.strip()]
    for task in tasks:
        ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
    for task in tasks:
        ctr("tasks", "delete", "--force", task, check=False)
    containers = ctr("containers", "ls", "-q", check=False).split()
    if containers:
        ctr("containers", "delete", *containers, check=False)
    return len(containers)


def containerd_ready() -> bool:
    return run("ctr", "--address", str(SOCKET), "version", check=False).returncode == 0


def forget_cri_records() -> None:
    """The CRI plugin's own files of the containers removed (they live in the kept root)."""
    for kind in ("containers", "sandboxes"):
        shutil.rmtree(CONTAINERD_ROOT / "io.containerd.grpc.v1.cri" / kind, ignore_errors=True)


def kubectl(*args: str, stdin: str | None = None,
            check: bool = True) -> str:
    return run(str(tool("kubectl")), "--kubeconfig", str(KUBECONFIG), *args, stdin=stdin,
               check=check).stdout


def node_info() -> dict[str, str]:
    """The node as the API server sees it: Ready, runtime and kubelet versions ({} if absent)."""
    out = kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
    try:
        node = json.loads(out)
    except ValueError:
        return {}
    ready = [c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
    info = node["status"].get("nodeInfo", {})
    return {"ready": (ready or ["Unknown"])[0], "runtime": info.get("containerRuntimeVersion", ""),
            "kubelet": info.get("kubeletVersion", "")}


def dns_ready() -> bool:
    return http_ok(f"http://{host.GATEWAY}:8181/ready")


def start_process(node: dict[str, object], name: str) -> None:
    processes = node.setdefault("processes", {})
    assert isinstance(processes, dict)
    command = argv(name)
    processes[name] = {"pid": spawn(name, command, HOME / "logs"), "argv": command}


def start(state: State, images: list[tuple[str, Path]],
          write: Callable[[State], None]) -> None:
    """Bring the node up after the control plane; WRITE saves the state after each process
    started, so that `down` can clean up after a failed `up`."""
    node = section(state, "node")
    write_configs()

    def launch(name: str) -> None:
        start_process(node, name)
        write(state)

    launch("containerd")
    wait_for(containerd_ready, 60, "containerd")
    if remove_containers():  # left by a node that crashed: containerd's CRI still knows them
        stop_pid(processes(state)["containerd"], "containerd")
        forget_cri_records()
        launch("containerd")
        wait_for(containerd_ready, 60, "containerd")
    import_images(images)
    launch("kubelet")
    wait_for(lambda: node_info().get("ready") == "True", 120, f"node {NODE_NAME} to be Ready")
    launch("kube-proxy")
    launch("coredns")
    kubectl("apply", "-f", "-", stdin=DNS_OBJECTS)
    wait_for(dns_ready, 60, "CoreDNS to be ready")
    info = node_info()
    log(f"node {NODE_NAME} Ready, {info['runtime']}, kubelet {info['kubelet']}")


def processes(state: State) -> dict[str, int]:
    """Each node process started, by name: its pid."""
    found = section(state, "node").get("processes", {})
    assert isinstance(found, dict)
    return {name: int(spec["pid"]) for name, spec in found.items()}


def revive(state: State) -> None:
    """Start again each node process that stopped (nothing supervises them)."""
    node = section(state, "node")
    for name, pid in processes(state).items():
        if not alive(pid):
            log(f"{name} had stopped")
            start_process(node, name)


def stop(state: State) -> None:
    """Stop the node and undo everything it did to the host, even after a crash."""
    running = processes(state)
    for name in reversed(ORDER[1:]):
        if name in running:
            stop_pid(running[name], name)
    if "containerd" in running and alive(running["containerd"]):
        remove_containers()
    host.kill_pods()
    if "containerd" in running:
        stop_pid(running["containerd"], "containerd")
        forget_cri_records()
    run(str(tool("kube-proxy")), "--cleanup", check=False)
    host.sweep_iptables(host.ISOLATION, f'name: "{CNI_NETWORK}"')
    for root in (STATE, CONTAINERD_ROOT):
        host.unmount_under(root)
    host.bridge_down()
    host.restore_sysctls(state)


def status_lines(state: State) -> list[str]:
    lines = []
    for name, pid in processes(state).items():
        lines.append(f"  {name:<24} pid {pid:<8} {'running' if alive(pid) else 'STOPPED'}")
    info = node_info()
    lines.append(f"  node {NODE_NAME}: Ready={info.get('ready', 'absent')} "
                 f"runtime={info.get('runtime', '-')} kubelet={info.get('kubelet', '-')}")
    return lines
