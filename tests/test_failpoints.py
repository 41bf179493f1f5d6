"""Failpoints: off unless named, unknown names refused, and a hit kills the process outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from adaptive_operator import failpoints


def test_names_are_parsed_and_unknown_ones_refused() -> None:
    assert failpoints.parse("") == frozenset()
    assert failpoints.parse(" scaling.after_write, healing.after_record ,") == {
        "scaling.after_write", "healing.after_record"}
    with pytest.raises(ValueError, match=r"unknown failpoint.*nope.*known: healing\.after"):
        failpoints.parse("nope")


def test_unarmed_points_do_nothing() -> None:
    assert not failpoints.ARMED  # the test run sets none
    failpoints.hit("scaling.after_write")  # still alive


def test_an_armed_point_kills_the_process_like_sigkill() -> None:
    code = "from adaptive_operator import failpoints; failpoints.hit('sharding.after_routing')"
    env = dict(os.environ, ADAPTIVE_FAILPOINTS="sharding.after_routing")
    done = subprocess.run([sys.executable, "-c", code + "; print('survived')"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert "survived" not in done.stdout
    assert "failpoint sharding.after_routing hit" in done.stderr
