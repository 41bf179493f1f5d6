"""The cluster's binaries, built from pinned Go modules (e2e/build/<group>) and cached by pin.

Standard library only: `e2e/cluster` runs before the project's venv exists.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cluster_state import CACHE, HERE, KUBE_VERSION, STATE, log

BUILD = HERE / "build"
IMAGES_BUILD = HERE / "images" / "build"

# Component groups: the Go module folder under e2e/build, the packages, the binaries they make,
# and the build tags, if any.
GROUPS: dict[str, dict[str, list[str]]] = {
    "k8s": {
        "packages": [
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
            # The real node: one `go build` with the control plane shares its compiled packages.
            "k8s.io/kubernetes/cmd/kubelet",
            "k8s.io/kubernetes/cmd/kube-proxy",
        ],
    },
    "etcd": {"packages": ["go.etcd.io/etcd/server/v3"]},
    "kwok": {"packages": ["sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"]},
    "helm": {"packages": ["helm.sh/helm/v3/cmd/helm"]},
    "coredns": {"packages": ["adaptive.dev/e2e/build/coredns"]},
    # Prometheus 3 with Kubernetes discovery only (the others are cloud SDKs: a longer build).
    "prometheus": {
        "packages": ["github.com/prometheus/prometheus/cmd/prometheus",
                     "github.com/prometheus/prometheus/cmd/promtool"],
        "tags": ["remove_all_sd", "enable_kubernetes_sd"],
    },
    # Not part of the cluster: lints .github/workflows in tests/test_workflows.py.
    "actionlint": {"packages": ["github.com/rhysd/actionlint/cmd/actionlint"]},
}
BINARY_NAMES = {"go.etcd.io/etcd/server/v3": "etcd"}
HELM_VERSION = "v3.22.0"  # must match e2e/build/helm/go.mod
PROMETHEUS_VERSION = "3.16.0"  # the release of e2e/build/prometheus/go.mod's v0.316.0


def binary_name(package: str) -> str:
    return BINARY_NAMES.get(package, package.rsplit("/", 1)[-1])


def version_ldflags() -> str:
    """Stamp the Kubernetes version so /version, kubectl and helm see a real release."""
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBE_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=2026-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def group_ldflags(group: str) -> str:
    stamps = {
        "k8s": version_ldflags(),
        # Helm's own version is a -X stamp too; unstamped it reports only "v3.22".
        "helm": f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION} "
                "-X helm.sh/helm/v3/internal/version.gitTreeState=clean "
                # `helm template` and `lint` render for this Kubernetes when no cluster is asked.
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 "
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36",
        "prometheus": f"-X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION} "
                      "-X github.com/prometheus/common/version.Branch=HEAD",
    }
    return "-s -w " + stamps.get(group, "")


def group_tags(group: str) -> str:
    return ",".join(GROUPS[group].get("tags", []))


def group_dir(group: str) -> Path:
    """Cache folder keyed by the pinned versions (go.mod, go.sum) and the build flags."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((BUILD / group / name).read_bytes())
    digest.update(group_ldflags(group).encode())
    if group_tags(group):  # unchanged keys (and caches) for the groups without tags
        digest.update(group_tags(group).encode())
    return CACHE / "bin" / f"{group}-{digest.hexdigest()[:12]}"


def binary(group: str, package: str) -> Path:
    return group_dir(group) / binary_name(package)


def tool(name: str) -> Path:
    """A built binary by its name (kubelet, kubectl, coredns...)."""
    for group, spec in GROUPS.items():
        for package in spec["packages"]:
            if binary_name(package) == name:
                return binary(group, package)
    raise KeyError(name)


def missing_groups() -> list[str]:
    return [
        g for g, spec in GROUPS.items()
        if not all(binary(g, p).exists() for p in spec["packages"])
    ]


def build_group(group: str) -> None:
    packages = GROUPS[group]["packages"]
    target = group_dir(group)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = ", ".join(binary_name(p) for p in packages)
    cmd = ["go", "build", "-trimpath", "-tags", group_tags(group), "-ldflags", group_ldflags(group),
           "-o", str(tmp) + "/"]
    log(f"building {names} (first build on a machine takes minutes)")
    started = time.monotonic()
    done = threading.Event()

    def progress() -> None:
        while not done.wait(30):
            log(f"  still building {names}: {time.monotonic() - started:.0f}s")

    threading.Thread(target=progress, daemon=True).start()
    result = subprocess.run(cmd + packages, cwd=BUILD / group,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done.set()
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit(f"[cluster] building {names} failed (exit {result.returncode})")
    for package in packages:
        # go build names a module-root main package after the module's last element.
        produced = tmp / binary_name(package)
        if not produced.exists():
            candidates = [p for p in tmp.iterdir() if p.is_file()]
            if len(candidates) != 1:
                raise SystemExit(f"[cluster] cannot find the {binary_name(package)} binary")
            candidates[0].rename(produced)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log(f"built {names} in {time.monotonic() - started:.0f}s")


def build() -> None:
    if not shutil.which("go"):
        raise SystemExit("[cluster] Go is needed to build the cluster's components")
    # Two groups at a time: one group's module downloads and single-threaded link overlap the
    # other's compiling; the biggest (k8s) comes first so that it is not left running alone.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(build_group, g) for g in missing_groups()]:
            future.result()


def build_images() -> list[tuple[str, Path]]:
    """The real node's images (e2e/images/build): cached tarballs, built when missing."""
    if not IMAGES_BUILD.exists():
        raise SystemExit(f"[cluster] {IMAGES_BUILD} is missing: the real node needs its images")
    started = time.monotonic()
    result = subprocess.run([str(IMAGES_BUILD)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"[cluster] building the images failed (exit {result.returncode})")
    images = []
    for line in result.stdout.splitlines():
        ref, _, path = line.strip().partition(" ")
        if ref and path:
            images.append((ref, Path(path)))
    log(f"{len(images)} images ready in {time.monotonic() - started:.0f}s")
    return images


def cached_images() -> list[tuple[str, Path]]:
    """The images already built (none is built: a running cluster picks up new ones fast)."""
    if not IMAGES_BUILD.exists():
        return []
    result = subprocess.run([str(IMAGES_BUILD), "--list"], stdout=subprocess.PIPE, text=True)
    rows = [line.split() for line in result.stdout.splitlines()]
    return [(row[1], Path(row[2])) for row in rows if len(row) == 4 and row[3] == "cached"]


def link_bin_dir() -> Path:
    """One folder with every binary, for PATH."""
    bindir = STATE / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for group, spec in GROUPS.items():
        for package in spec["packages"]:
            link = bindir / binary_name(package)
            link.unlink(missing_ok=True)
            link.symlink_to(binary(group, package))
    return bindir
