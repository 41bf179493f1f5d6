"""Failpoints: named places in the operator where a test can have the process killed on purpose.

`ADAPTIVE_FAILPOINTS=healing.after_record,scaling.after_write` makes the operator SIGKILL itself
the first time it passes one of the named points, so a crash-safety test kills it exactly
between recording an action and carrying it out, not whenever a poller happens to notice.
Unset (the default and what production runs), `hit` is a lookup in an empty frozenset.

The points (see `POINTS`) sit where a crash is most harmful: after an intent is recorded and
before the action, or after an action and before its bookkeeping.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "ADAPTIVE_FAILPOINTS"
POINTS = {
    "scaling.after_write": "the target's replicas were written; Event and status not yet",
    "scaling.after_said": "the write was made and its Event posted; its status record not yet",
    "healing.after_record": "the healing intent is in the ledger; the action not yet taken",
    "sharding.after_routing": "the routing table marks a migration; its Job not yet created",
}


def parse(text: str) -> frozenset[str]:
    """The armed points; an unknown name is refused at start-up, not silently never hit."""
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - POINTS.keys())
    if unknown:
        raise ValueError(
            f"{ENV}: unknown failpoint(s) {', '.join(unknown)}; known: {', '.join(sorted(POINTS))}"
        )
    return names


ARMED = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Die here, as abruptly as a SIGKILL from outside, when `name` is armed."""
    if name in ARMED:
        sys.stderr.write(f"failpoint {name} hit: {POINTS[name]}; killing the process\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
