"""`adaptive-operator run` with cProfile in every thread (the event loop and the workers that
`asyncio.to_thread` uses); after `--after` seconds it forgets what it saw, and `--for` seconds
later writes the merged stats (pstats format) to `--out`, then keeps running. (cProfile slows
the process down: the figures of a profiled run are not the benchmark's.)

    python benchmarks/profile_operator.py --after 120 --for 60 --out prof.pstats -- run ...

(benchmarks/scale.py --profile starts the operator this way.)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

PROFILES: list[cProfile.Profile] = []


def _thread_run(original: Any) -> Any:
    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        PROFILES.append(profile)
        profile.enable()  # a profiler hooks only the thread that enables it
        original(self)

    return run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--after", type=float, required=True)
    parser.add_argument("--for", dest="duration", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    threading.Thread.run = _thread_run(threading.Thread.run)  # type: ignore[method-assign]
    main_profile = cProfile.Profile()
    PROFILES.append(main_profile)

    def control() -> None:
        time.sleep(args.after)
        for profile in list(PROFILES):
            profile.clear()  # forget the warm-up: what stays is the steady state
        time.sleep(args.duration)
        stats = pstats.Stats(*[p for p in list(PROFILES) if p.getstats()])
        stats.dump_stats(args.out)
        print(f"[profile] wrote {args.out}", file=sys.stderr, flush=True)

    threading.Thread(target=control, daemon=True, name="profile-control").start()
    main_profile.enable()
    from adaptive_operator.cli import main as cli_main

    rest = [a for a in args.rest if a != "--"]
    return int(cli_main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
