"""The command's frame: subcommands, version, and one-line errors."""

from __future__ import annotations

import pytest

from adaptive_operator import __version__
from adaptive_operator.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_run_refuses_a_namespace_together_with_all_namespaces(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--all-namespaces", "--namespace", "team-a"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
