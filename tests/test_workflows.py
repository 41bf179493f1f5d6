"""The GitHub workflows: actionlint passes, and the kind job runs what users' CI needs.

actionlint is built from its Go module by `e2e/cluster build` (pinned in e2e/build/actionlint).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from built_tools import built

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return built("actionlint", "actionlint")


def workflow(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_actionlint_passes_on_every_workflow(actionlint: Path) -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    # shellcheck is not installed here; actionlint's own checks still run.
    result = subprocess.run([str(actionlint), "-shellcheck=", "-pyflakes=", *files],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kind_job_loads_both_images_it_builds() -> None:
    script = run_lines(workflow("e2e.yaml")["jobs"]["e2e"])
    for image in ("localhost/adaptive-operator:dev", "localhost/adaptive-workload:dev"):
        assert f"docker build -t {image}" in script
        assert image in script.split("kind load docker-image", 1)[1]


def test_the_kind_job_loads_the_operator_under_the_name_the_charts_defaults_run() -> None:
    """An install with default values (e2e/test_chart_real.py) runs the chart's repository at
    its appVersion: the job tags the built image so, as e2e/cluster does on the local node."""
    images = next(step["run"] for step in workflow("e2e.yaml")["jobs"]["e2e"]["steps"]
                  if step.get("name") == "Images")
    names = "\n".join(line for line in images.splitlines()
                      if line.strip().startswith(("repository=", "version=")))
    shown = subprocess.run(["bash", "-c", names + '\necho "$repository:$version"'], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    values = yaml.safe_load((ROOT / "charts/adaptive-operator/values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts/adaptive-operator/Chart.yaml").read_text())
    assert shown == f"{values['image']['repository']}:{chart['appVersion']}"
    assert 'docker tag localhost/adaptive-operator:dev "$repository:$version"' in images
    assert '"$repository:$version"' in images.split("kind load docker-image", 1)[1]


def test_the_kind_job_pins_the_kind_release_that_built_the_node_image() -> None:
    steps = workflow("e2e.yaml")["jobs"]["e2e"]["steps"]
    kind = next(s for s in steps if s.get("uses", "").startswith("helm/kind-action"))
    assert kind["with"]["config"] == "kind-config.yaml"
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    images = {node["image"] for node in config["nodes"]}
    assert len(images) == 1
    (image,) = images
    # kind supports a node image only with the release that built it, pinned by digest.
    assert image.startswith("kindest/node:v1.36.") and "@sha256:" in image
    assert kind["with"]["version"] == "v0.33.0"


def test_lint_types_and_import_contracts_run_on_every_push() -> None:
    script = run_lines(workflow("e2e.yaml")["jobs"]["checks"])
    for command in ("ruff check", "mypy", "lint-imports"):
        assert command in script


def test_the_kind_prometheus_scrapes_pods_as_the_local_clusters_does() -> None:
    """The exporter pods and workloads of the e2e tests are found the same way on kind: the
    values' pod job is the local one (e2e/cluster_prometheus.py) minus what is local only."""
    sys.path.insert(0, str(ROOT / "e2e"))
    import cluster_prometheus  # a script folder (standard library only), not a package

    values = yaml.safe_load((ROOT / "e2e" / "kind-prometheus-values.yaml").read_text())
    jobs = {job["job_name"]: job for job in values["serverFiles"]["prometheus.yml"]
            ["scrape_configs"]}
    assert jobs[cluster_prometheus.POD_JOB] == cluster_prometheus.pod_job(None, None)
    assert values["server"]["global"]["scrape_interval"] == "2s"
    # The history seeding's receiver and out-of-order window (e2e/history_seed.py).
    assert values["server"]["extraFlags"] == list(cluster_prometheus.EXTRA_FLAGS)
    local = cluster_prometheus.config("127.0.0.1", 9090, Path("t"), Path("k"), "node")["storage"]
    assert values["server"]["tsdb"] == local["tsdb"]  # type: ignore[index]
    script = run_lines(workflow("e2e.yaml")["jobs"]["e2e"])
    assert "-f e2e/kind-prometheus-values.yaml" in script
