"""The e2e suite's switches (e2e/modes.py): the local cluster fakes by default and runs the real
thing when asked; every other cluster (kind) always runs the real thing; a typo is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import modes  # an e2e helper module (e2e/ is a script folder, not a package)

ALL = [modes.STAND_INS, modes.EXPORTERS]


@pytest.mark.parametrize("mode", ALL, ids=lambda mode: mode.variable)
@pytest.mark.parametrize(("local", "asked", "real"), [
    (True, None, False), (True, "fake", False), (True, "real", True),
    (False, None, True), (False, "fake", True),  # off the local cluster nothing fakes for us
])
def test_real_off_the_local_cluster_or_when_asked(
        monkeypatch: pytest.MonkeyPatch, mode: modes.Mode, local: bool, asked: str | None,
        real: bool) -> None:
    if asked is None:
        monkeypatch.delenv(mode.variable, raising=False)
    else:
        monkeypatch.setenv(mode.variable, getattr(mode, asked))
    assert mode.is_real(local) is real
    assert mode.asked() == (mode.real if asked == "real" else mode.fake)


@pytest.mark.parametrize("mode", ALL, ids=lambda mode: mode.variable)
def test_an_unknown_value_is_refused_with_the_two_it_takes(
        monkeypatch: pytest.MonkeyPatch, mode: modes.Mode) -> None:
    monkeypatch.setenv(mode.variable, "kind")
    with pytest.raises(ValueError, match=f"{mode.fake} or {mode.real}, not 'kind'"):
        mode.is_real(True)


def test_the_two_switches_read_different_variables() -> None:
    assert modes.STAND_INS.variable != modes.EXPORTERS.variable
