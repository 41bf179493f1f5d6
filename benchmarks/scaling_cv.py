"""Cross-validated scaling benchmark: the product against reactive HPA, static headroom, KEDA, the
Predictive HPA, Crane's EHPA and an oracle, with every knob picked on training folds only.

Groups are contiguous segments of each trace (`scaling_data.py`). Two schemes:
- leave one trace out: knobs picked on every segment of the other traces, scored on this trace;
- time-blocked: fold s holds out segment s of every trace and picks on the other segments.
A family's knob is picked as the least unserved demand at no more than BUDGET x HPA's
replica-hours on the training groups (the cheapest point when none fits the budget), and the
held-out figures are reported beside the training ("development") ones.

Run from the repository root (about 10-20 CPU minutes; results in benchmarks/results/):
    PYTHONPATH=operator nice -n 10 .venv/bin/python benchmarks/scaling_cv.py
"""

from __future__ import annotations

import argparse
import math
import pickle
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from scaling_data import SEGMENTS, Trace, all_traces
from scaling_runs import DEFAULT_OURS, PREVIOUS_OURS, Figures, family_of, run_trace

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET = 1.00
FAMILIES = ("ours", "ours default", "ours previous default", "headroom", "keda", "phpa", "crane",
            "oracle", "frontier")
# The product picked at their replica-hours (`at_rival_cost`): static headroom at two sizes (the
# headroom family's own pick, h=-0.05 at the 1.00x budget, is cheaper than any product point)
# and the Predictive HPA as picked on the folds.
RIVALS = ("headroom h=0.05", "headroom h=0.1", "phpa")
Key = tuple[str, int]  # (trace, segment)
Table = dict[str, dict[str, list[Figures]]]  # trace -> label -> per segment


@dataclass(frozen=True)
class Score:
    unserved: float  # unserved demand / HPA's on the same rows
    cost: float  # replica-hours / HPA's
    under_time: float
    unserved_share: float  # unserved demand / demand


def total(table: Table, label: str, keys: Iterable[Key]) -> Figures:
    out = Figures()
    for trace, segment in keys:
        out = out + table[trace][label][segment]
    return out


def score(table: Table, label: str, keys: list[Key]) -> Score:
    mine, base = total(table, label, keys), total(table, "hpa", keys)
    return Score(_ratio(mine.unserved, base.unserved),
                 _ratio(mine.replica_hours, base.replica_hours), mine.under_time,
                 mine.unserved / mine.demand if mine.demand else 0.0)


def labels_of(table: Table, family: str) -> list[str]:
    labels = next(iter(table.values())).keys()
    if family == "ours default":
        return [DEFAULT_OURS]
    if family == "ours previous default":
        return [PREVIOUS_OURS]
    if family in labels:  # one candidate by its label (a rival at a set knob)
        return [family]
    return [label for label in labels if family_of(label) == family]


def pick(table: Table, family: str, keys: list[Key], budget: float = BUDGET) -> str:
    """The least unserved demand within the budget; the cheapest when nothing fits."""
    scored = [(score(table, label, keys), label) for label in labels_of(table, family)]
    fits = [(s.unserved, s.cost, label) for s, label in scored if s.cost <= budget]
    if fits:
        return min(fits)[2]
    return min((s.cost, s.unserved, label) for s, label in scored)[2]


def keys_of(traces: Iterable[str], segments: Iterable[int]) -> list[Key]:
    return [(t, s) for t in traces for s in segments]


def leave_one_trace_out(table: Table, names: list[str]) -> list[dict[str, object]]:
    rows = []
    for held in names:
        train = keys_of([n for n in names if n != held], range(SEGMENTS))
        test = keys_of([held], range(SEGMENTS))
        rows += [_fold_row(table, family, train, test, held) for family in FAMILIES]
    return rows


def at_rival_cost(table: Table, names: list[str]) -> list[dict[str, object]]:
    """Leave one trace out, the product against each rival at the rival's replica-hours: the
    rival's knob is set or picked on the training traces as usual, and the product's knobs as the
    least unserved demand there at no more than the rival's replica-hours there (family
    "ours@<rival>")."""
    rows = []
    for held in names:
        train = keys_of([n for n in names if n != held], range(SEGMENTS))
        test = keys_of([held], range(SEGMENTS))
        for rival in RIVALS:
            theirs = _fold_row(table, rival, train, test, held)
            budget = score(table, str(theirs["picked"]), train).cost
            ours = _fold_row(table, "ours", train, test, held, budget=budget)
            rows += [theirs, {**ours, "family": f"ours@{rival}"}]
    return rows


def blocked(table: Table, names: list[str]) -> list[dict[str, object]]:
    rows = []
    for s in range(SEGMENTS):
        train = keys_of(names, [k for k in range(SEGMENTS) if k != s])
        for trace in names:
            test = keys_of([trace], [s])
            rows += [_fold_row(table, f, train, test, trace, s) for f in FAMILIES]
    return rows


def _fold_row(table: Table, family: str, train: list[Key], test: list[Key], held: str,
              segment: int | None = None, budget: float = BUDGET) -> dict[str, object]:
    label = pick(table, family, train, budget)
    return {"family": family, "held_out": held, "segment": segment, "picked": label,
            "development": asdict(score(table, label, train)),
            "held": asdict(score(table, label, test)), "test_keys": test}


def pooled(table: Table, rows: list[dict[str, object]], family: str,
           traces: set[str]) -> tuple[Score, Score]:
    """Held-out figures of a family summed over its folds (each fold with its own pick), and the
    mean of its development figures."""
    mine, base = Figures(), Figures()
    dev: list[dict[str, float]] = []
    for row in rows:
        if row["family"] != family or row["held_out"] not in traces:
            continue
        keys = [tuple(k) for k in row["test_keys"]]  # type: ignore[attr-defined]
        mine = mine + total(table, str(row["picked"]), keys)
        base = base + total(table, "hpa", keys)
        dev.append(row["development"])  # type: ignore[arg-type]
    if not dev:
        nothing = Score(math.nan, math.nan, math.nan, math.nan)
        return nothing, nothing
    held = Score(_ratio(mine.unserved, base.unserved), mine.replica_hours / base.replica_hours,
                 mine.under_time, mine.unserved / mine.demand)
    mean = {k: sum(d[k] for d in dev) / len(dev) for k in dev[0]}
    return Score(**mean), held


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def runs(traces: list[Trace], saved: Path | None) -> Table:
    """Every candidate on every trace; with --runs DIR, each trace's figures are read from
    DIR/<trace>.pickle when there (to rework the report without the replays, or to run the
    traces in several processes) and written there otherwise."""
    table = {}
    for trace in traces:
        path = None if saved is None else saved / f"{trace.name}.pickle"
        if path is not None and path.exists():
            table[trace.name] = pickle.loads(path.read_bytes())
            continue
        table[trace.name] = run_trace(trace)
        if path is not None:
            path.write_bytes(pickle.dumps(table[trace.name]))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, help="folder caching each trace's figures")
    parser.add_argument("--only", help="run only this trace (and stop before the report)")
    args = parser.parse_args()
    traces = all_traces()
    if args.only:
        runs([t for t in traces if t.name == args.only], args.runs)
        return 0
    table = runs(traces, args.runs)
    names = [t.name for t in traces]
    folds = {"leave one trace out": leave_one_trace_out(table, names),
             "time-blocked": blocked(table, names),
             "at a rival's replica-hours": at_rival_cost(table, names)}
    import scaling_report

    scaling_report.write(table, traces, folds, RESULTS)
    return 0


def seasonal_names(traces: list[Trace], real_only: bool) -> set[str]:
    return {t.name for t in traces if t.seasonal and not (real_only and t.synthetic)}


if __name__ == "__main__":
    raise SystemExit(main())
