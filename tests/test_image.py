"""The image recipe, held to what the chart and the package expect: the entry point, the user,
the files it is built from, and a publishing workflow that runs on version tags. (It is built for
real, with podman, by `e2e/images/build` for the test cluster's node.)"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in DOCKERFILE.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in INSTRUCTIONS if line.split()[0] == name]


def test_entrypoint_runs_the_packaged_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(instructions("ENTRYPOINT")[-1])  # exec form: no shell at run time
    assert entrypoint == ["adaptive-operator", "run"]
    assert entrypoint[0] in scripts


def test_builds_in_two_stages_on_the_same_slim_python() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in INSTRUCTIONS
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    assert "COPY --from=builder /opt/venv /opt/venv" in INSTRUCTIONS


def test_runs_as_numeric_non_root_user() -> None:
    # Numeric, so that the kubelet can check the chart's runAsNonRoot without /etc/passwd.
    user, group = instructions("USER")[-1].split(":")
    assert user == group == "65532"
    last_from = max(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM"))
    assert INSTRUCTIONS.index("USER 65532:65532") > last_from


def dockerignore_keeps(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    kept = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern):
            kept = negated
    return kept


def copied_sources() -> list[str]:
    sources = []
    for args in instructions("COPY"):
        if args.startswith("--from"):
            continue
        sources.extend(args.split()[:-1])
    return sources


def test_copies_exactly_what_the_wheel_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    built_from = {"pyproject.toml", project["project"]["readme"],
                  *project["tool"]["setuptools"]["packages"]["find"]["where"]}
    assert set(copied_sources()) == built_from


@pytest.mark.parametrize(("path", "kept"), [
    pytest.param("pyproject.toml", True, id="project-file-reaches-the-build"),
    pytest.param("operator", True, id="sources-reach-the-build"),
    pytest.param(".venv", False, id="virtualenv-stays-out"),
    pytest.param("e2e", False, id="test-cluster-stays-out"),
    pytest.param(".git", False, id="history-stays-out"),
])
def test_build_context_is_small(path: str, kept: bool) -> None:
    assert dockerignore_keeps(path) is kept


def test_every_copied_source_is_in_the_build_context() -> None:
    assert all(dockerignore_keeps(source) for source in copied_sources())


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows/image.yaml").read_text())
    return data


def test_workflow_publishes_to_ghcr_on_version_tags(workflow: dict[Any, Any]) -> None:
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert triggers["push"]["tags"] == ["v*.*.*"]
    assert workflow["permissions"]["packages"] == "write"
    steps = workflow["jobs"]["image"]["steps"]
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert uses["docker/login-action"]["with"]["registry"] == "ghcr.io"
    build = uses["docker/build-push-action"]["with"]
    assert build["context"] == "."
    assert "refs/tags/v" in build["push"]
    assert "ghcr.io/" in uses["docker/metadata-action"]["with"]["images"]
