"""e2e/images/build: tarballs keyed by their inputs, a warm call that builds nothing, the output
the cluster reads (`REF TARBALL` lines), and clear errors. Real builds take minutes and run in
`e2e/cluster up`, not here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from script_loader import ROOT, load_script

build = load_script("e2e/images/build", "images_build")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    images = tmp_path / "images"
    monkeypatch.setattr(build, "IMAGES", images)
    return images


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the inputs the images are built from, to change without touching the repo."""
    root = tmp_path / "root"
    for image in build.ALL:
        for entry in image.inputs:
            source, target = ROOT / entry, root / entry
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    monkeypatch.setattr(build, "ROOT", root)
    return root


def test_a_changed_source_changes_its_image_and_those_built_from_it(fake_root: Path) -> None:
    before = build.hashes()
    (fake_root / "e2e/workloads/kv_server.py").write_text("# changed\n")
    after = build.hashes()
    assert after["workload"] != before["workload"]
    assert {name: after[name] for name in ("base", "operator", "pause")} == \
        {name: before[name] for name in ("base", "operator", "pause")}


def test_a_changed_base_recipe_rebuilds_everything_built_from_it(
        fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = build.hashes()
    monkeypatch.setattr(build, "ALL", (
        build.ALL[0].__class__(**{**build.ALL[0].__dict__, "recipe": "another recipe"}),
        *build.ALL[1:]))
    after = build.hashes()
    assert after["base"] != before["base"]
    assert after["operator"] != before["operator"]
    assert after["workload"] != before["workload"]
    assert after["pause"] == before["pause"]  # FROM scratch


def test_byte_code_and_caches_are_not_inputs(fake_root: Path) -> None:
    before = build.hashes()
    cached = fake_root / "operator/adaptive_operator/__pycache__/cli.cpython-311.pyc"
    cached.parent.mkdir(exist_ok=True)
    cached.write_bytes(b"\0")
    assert build.hashes() == before


def test_a_missing_input_is_a_clear_error(fake_root: Path) -> None:
    (fake_root / "Dockerfile").unlink()
    with pytest.raises(build.BuildError, match="Dockerfile does not exist"):
        build.hashes()


def test_list_says_what_is_cached_without_building(
        cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digests = build.hashes()
    cache.mkdir(parents=True)
    build.tarball(build.IMAGE_BY_NAME["pause"], digests["pause"]).touch()
    assert build.main(["--list"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(name, ref, state) for name, ref, _, state in lines] == [
        ("base", "localhost/adaptive-debian:bookworm", "missing"),
        ("operator", "localhost/adaptive-operator:dev", "missing"),
        ("workload", "localhost/adaptive-workload:dev", "missing"),
        ("pause", "localhost/adaptive-pause:dev", "cached"),
    ]


def warm(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True)
    digests = build.hashes()
    paths = {image.name: build.tarball(image, digests[image.name]) for image in build.ALL}
    for path in paths.values():
        path.touch()
    return paths


def test_a_warm_call_prints_every_ref_and_tarball_and_builds_nothing(
        cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    paths = warm(cache)
    monkeypatch.setattr(build.subprocess, "run", None)  # any command would fail the test
    monkeypatch.setattr(build.shutil, "which", lambda _tool: None)  # no tool needed either
    assert build.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{image.ref} {paths[image.name]}" for image in build.ALL]
    paths["base"].unlink()  # a base is needed only to build what is FROM it
    assert build.main(["--only", "workload", "--only", "pause"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"localhost/adaptive-workload:dev {paths['workload']}",
        f"localhost/adaptive-pause:dev {paths['pause']}"]


def test_tarballs_are_named_by_repository_and_inputs(cache: Path) -> None:
    digests = build.hashes()
    out = build.tarball(build.IMAGE_BY_NAME["operator"], digests["operator"])
    assert out == cache / f"adaptive-operator-{digests['operator']}.tar"


def test_a_missing_tool_is_named_before_anything_runs(
        cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda tool: None if tool == "mmdebstrap" else tool)
    assert build.main(["--only", "workload"]) == 1
    err = capsys.readouterr().err
    assert "missing mmdebstrap on PATH (apt-get install podman mmdebstrap)" in err


def test_an_unknown_image_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build.main(["--only", "nginx"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nginx'" in capsys.readouterr().err


def test_a_failed_step_names_its_command() -> None:
    with pytest.raises(build.BuildError, match=r"`false --flag x \.\.\.` failed \(exit 1\)"):
        build.run(["false", "--flag", "x", "y"])


def test_the_workload_image_copies_every_program() -> None:
    containerfile = (ROOT / "e2e/workloads/Containerfile").read_text()
    programs = sorted(path.name for path in (ROOT / "e2e/workloads").glob("*.py"))
    copied = sorted(line.split()[1] for line in containerfile.splitlines()
                    if line.startswith("COPY "))
    assert copied == programs
    assert "USER 65532:65532" in containerfile


def test_the_kind_workflow_builds_the_workload_image_with_its_base_argument() -> None:
    # Users' CI (kind, Docker) builds the same Containerfile on a registry base.
    containerfile = (ROOT / "e2e/workloads/Containerfile").read_text()
    declared = {line.split()[1].split("=")[0] for line in containerfile.splitlines()
                if line.startswith("ARG ")}
    workflow = (ROOT / ".github/workflows/e2e.yaml").read_text()
    assert "-f e2e/workloads/Containerfile e2e/workloads" in workflow
    assert "--build-arg BASE_IMAGE=" in workflow
    assert declared == {"BASE_IMAGE"}
