"""The host's side of the test cluster: the pod bridge, routes, iptables rules, sysctls, mounts and
cgroups that the real node needs, and their removal, which must leave nothing behind.

Standard library only: `e2e/cluster` runs before the project's venv exists.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import time
from pathlib import Path

from cluster_state import STATE, State, log, run, section

BRIDGE = "adaptive0"
GATEWAY = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
# KWOK's fake pod IPs (per node 10.0.N.0/24 and fd00:0:0:N::/64) and node IPs (10.1.0.N) are
# not on this machine: a packet to one must die here instead of leaving it.
KWOK_NODE_IP = "10.1.0.1"
KWOK_POD_CIDRS = ("10.0.0.0/16", "10.1.0.0/16", "fd00::/48")
ISOLATION = "adaptive: the pod network stays on this machine"
# Set by us (forwarding between pods) or by the kubelet at start-up; put back on `down`.
SYSCTLS = ("net.ipv4.ip_forward", "vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")
CGROUP_ROOT = Path("/sys/fs/cgroup")
POD_CGROUP = "kubepods"  # the kubelet's (cgroupfs driver, cgroupRoot "/")
IPTABLES = ("iptables", "ip6tables")


def blackhole_metric() -> int:
    """Each cluster's own route metric, so two clusters' routes can coexist and each `down`
    removes only its own."""
    return 4000 + int(hashlib.sha256(str(STATE).encode()).hexdigest()[:6], 16) % 4000


def add_blackholes() -> None:
    for cidr in KWOK_POD_CIDRS:
        family = "-6" if ":" in cidr else "-4"
        result = run("ip", family, "route", "add", "blackhole", cidr, "metric",
                     str(blackhole_metric()), check=False)
        if result.returncode != 0 and "File exists" not in result.stdout:
            log(f"cannot route {cidr} nowhere: {result.stdout.strip()}")


def remove_blackholes() -> None:
    """Every route of ours (by its metric), whatever the state file says."""
    for cidr in KWOK_POD_CIDRS:
        family = "-6" if ":" in cidr else "-4"
        run("ip", family, "route", "del", "blackhole", cidr, "metric",
            str(blackhole_metric()), check=False)


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def save_sysctls(state: State) -> None:
    saved = section(state, "sysctls")
    for name in SYSCTLS:
        if name not in saved and sysctl_path(name).exists():
            saved[name] = sysctl_path(name).read_text().strip()


def restore_sysctls(state: State) -> None:
    for name, value in section(state, "sysctls").items():
        try:
            sysctl_path(name).write_text(str(value))
        except OSError as error:
            log(f"cannot restore {name}={value}: {error}")


def isolation_rules(api_port: int) -> list[list[str]]:
    """Nothing is forwarded between the pod bridge and any other interface, and the API server
    (on every address, for the pods) answers only this host and its pods."""
    comment = ["-m", "comment", "--comment", ISOLATION, "-j", "DROP"]
    return [["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, *comment],
            ["FORWARD", "-o", BRIDGE, "!", "-i", BRIDGE, *comment],
            ["INPUT", "!", "-i", "lo", "!", "-s", POD_CIDR, "-p", "tcp", "--dport",
             str(api_port), *comment]]


def bridge_up(state: State, api_port: int) -> None:
    """The pods' bridge with the host's address on it, which the control plane binds to."""
    save_sysctls(state)
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "replace", f"{GATEWAY}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for rule in isolation_rules(api_port):
        if run("iptables", "-w", "-C", *rule, check=False).returncode != 0:
            run("iptables", "-w", "-I", *rule)
    # Pod to Service to pod on the same bridge is routed through the host.
    sysctl_path("net.ipv4.ip_forward").write_text("1")


def bridge_down() -> None:
    """The bridge and its veths (the isolation rules go with sweep_iptables(ISOLATION))."""
    ports = Path(f"/sys/class/net/{BRIDGE}/brif")
    for port in sorted(ports.iterdir()) if ports.exists() else []:
        run("ip", "link", "del", port.name, check=False)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run("ip", "link", "del", BRIDGE)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ROOT, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 is a space
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(root: Path) -> None:
    for point in mounts_under(root):
        if run("umount", point, check=False).returncode != 0:
            run("umount", "-l", point, check=False)


def pod_cgroups() -> list[Path]:
    """Every cgroup of the kubelet's pods, in every hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else []:
        top = hierarchy / POD_CGROUP
        if top.is_dir():
            found += [top, *(p for p in top.rglob("*") if p.is_dir())]
    return sorted(found, key=lambda p: -len(p.parts))


def cgroup_pids(cgroups: list[Path]) -> set[int]:
    pids: set[int] = set()
    for cgroup in cgroups:
        try:
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
        except OSError:
            continue
    return pids


def kill_pods() -> None:
    """Kill whatever still runs in a pod's cgroup, then remove the cgroups."""
    deadline = time.monotonic() + 30
    while (pids := cgroup_pids(pod_cgroups())) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        time.sleep(0.2)
    for cgroup in pod_cgroups():
        try:
            cgroup.rmdir()
        except OSError as error:
            log(f"cannot remove cgroup {cgroup}: {error}")


def iptables_rules(binary: str, table: str) -> tuple[list[str], list[list[str]]]:
    """A table's chains and its rules (each as the words after -A)."""
    result = run(f"{binary}-save", "-t", table, check=False)
    lines = result.stdout.splitlines()
    chains = [line[1:].split()[0] for line in lines if line.startswith(":")]
    return chains, [shlex.split(line)[1:] for line in lines if line.startswith("-A ")]


def jumps_to(rule: list[str], chains: set[str]) -> bool:
    return any(rule[i + 1] in chains for i, word in enumerate(rule[:-1]) if word in ("-j", "-g"))


def chains_with_prefix(chains: list[str], prefix: str) -> set[str]:
    return {c for c in chains if c.startswith(prefix)}


def used_chains(chains: list[str], rules: list[list[str]]) -> set[str]:
    """The chains that some rule jumps to."""
    return {c for c in chains if any(jumps_to(r, {c}) for r in rules)}


def leftover_chains(chains: list[str], rules: list[list[str]]) -> set[str]:
    """kube-proxy's and the kubelet's chains; CNI portmap's per-pod chains that nothing uses any
    more, and its top chains once no pod's chain is left (portmap never removes those)."""
    used = used_chains(chains, rules)
    per_pod = chains_with_prefix(chains, "CNI-DN-")
    drop = chains_with_prefix(chains, "KUBE-") | (per_pod - used)
    if per_pod <= drop:
        drop |= chains_with_prefix(chains, "CNI-HOSTPORT-")
    return drop


def delete_marked_rules(binary: str, table: str, markers: tuple[str, ...]) -> None:
    _, rules = iptables_rules(binary, table)
    for rule in rules:
        if any(marker in " ".join(rule) for marker in markers):
            run(binary, "-w", "-t", table, "-D", *rule, check=False)


def drop_leftover_chains(binary: str, table: str) -> None:
    """Delete the rules that jump to a leftover chain, then flush and delete those chains."""
    chains, rules = iptables_rules(binary, table)
    drop = leftover_chains(chains, rules)
    for rule in rules:
        if rule[0] not in drop and jumps_to(rule, drop):
            run(binary, "-w", "-t", table, "-D", *rule, check=False)
    for flag in ("-F", "-X"):
        for chain in sorted(drop):
            run(binary, "-w", "-t", table, flag, chain, check=False)


def sweep_iptables(*markers: str) -> None:
    """Remove the rules that carry one of MARKERS (ours, our CNI network's portmap rules), then
    the chains that kube-proxy, the kubelet and portmap leave behind when killed."""
    for binary in IPTABLES:
        for table in ("filter", "nat", "mangle"):
            delete_marked_rules(binary, table, markers)
            drop_leftover_chains(binary, table)
