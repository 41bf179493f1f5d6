"""A flag must not blind the operator's detector to the next incident. With the cool-down
alone (100 rows after a flag, `detect`'s), a two-sync error blip that got flagged left a bad
rollout 40 syncs later unflagged for 63 to 111 syncs, or for all 150 simulated, in 7 of 8
seeds (25 minutes and more at a 15-s sync). With re-arming, a row beyond training needs only
the blip to have settled (`anomaly_flags`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from test_healing_cadence import LIVE, SYNC, Row, cycle, flagged_syncs

BLIP, ROLLOUT = 20, 60  # syncs: errors at 0.2 for two syncs, then at 0.5 from the rollout on
END = 4 * 3600  # a 4-hour backfill of a latency cycle and noisy errors before the live syncs


def blip_then_rollout(seed: int) -> Callable[[float], Row]:
    read = cycle(450, 0.002, seed)

    def with_errors(t: float) -> Row:
        row, sync = read(t), round((t - END) / SYNC) - 1  # the live syncs from 0
        if BLIP <= sync < BLIP + 2:
            row["errors"] = 0.2
        if sync >= ROLLOUT:
            row["errors"] = 0.5
        return row
    return with_errors


@pytest.mark.parametrize("seed", [0, 2])
def test_a_bad_rollout_soon_after_a_flagged_blip_is_flagged(seed: int) -> None:
    _, flags = flagged_syncs(blip_then_rollout(seed), END, 0, ROLLOUT + 10)
    assert [s for s in flags if s < ROLLOUT][:1] in ([BLIP + 1], [BLIP + 2])  # the blip
    assert [s for s in flags if s >= ROLLOUT][:1] in ([ROLLOUT + n] for n in range(1, 6))


@pytest.mark.parametrize("seed", [0, 2])
def test_with_the_cool_down_alone_the_flagged_blip_hid_the_rollout(seed: int) -> None:
    _, flags = flagged_syncs(blip_then_rollout(seed), END, 0, ROLLOUT + 15,
                             settings=replace(LIVE, rearm_rows=0))
    assert {BLIP + 1, BLIP + 2} & set(flags) and not [s for s in flags if s >= ROLLOUT]
