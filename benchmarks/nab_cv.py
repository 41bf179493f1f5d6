"""Leave-one-group-out cross-validation of the anomaly detector on NAB and synthetic stress series.

The detector learns nothing across files (each series trains its own forests on its own past),
so what the development data can overfit is the choice of constants: the operating point
(thresholds, cut-offs, cool-down) and the forest's set-up. Here every such choice is made by
the harness, on the training folds only:
- the files are split into groups (`group_of`): the two artificial NAB groups, the real AWS
  CloudWatch series by metric kind, and the synthetic stress series (`nab_stress`);
- for each group left out, the candidate (`SCORE_CHOICES` x `JUDGE_GRID`) with the best NAB
  standard score on the other groups (pooled, mean over the forest seeds) among those whose
  seeds score within `--max-spread` points of each other there (issue 17 asks that the seed
  move the score by at most one; when none does, the one whose seeds lie closest) is picked,
  and scored on the group left out: the held-out figure, next to its development-fold figure;
- the product's defaults are the candidate picked on all groups; the held-out figures are those
  of the folds, never of that final choice.
Scores are NAB's standard profile at the detector's own flags (`nab.score_file`).

Run: `PYTHONPATH=operator nice -n 10 python benchmarks/nab_cv.py [--seeds 0,1,2]`
(`--quick` for a subsample while exploring; `--cache DIR` keeps the forests' scores).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

import nab
import nab_stress
from adaptive_operator.domain.healing.anomaly import (
    OPERATING_POINT_KNOBS,
    DetectorSettings,
    ScoredBatch,
    detect_series,
    judge,
    score_batch,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STANDARD = nab.PROFILES[0]
FloatArray = npt.NDArray[np.float64]

# The forest's set-up (each needs the forests fitted again): the product's current one (the mean
# of 12 forests of 30 trees, each tree grown on all 2,000 training rows), the same with trees
# of subsamples of 256 rows (scikit-learn's default, the product's until issue 17's bound on the
# seed), 6 and 3 forests of either (the seed moves the score more the fewer forests are
# averaged: nab_seed.md), one forest, the long mean shift over 30 rows instead of 15, one
# forest of 100 trees, and the seasonal-differencing cut-off lower and higher. `--set-ups N`
# keeps the first N.
SCORE_CHOICES: tuple[dict[str, Any], ...] = (
    {},
    {"max_samples": 256},
    {"forests": 6},
    {"forests": 3},
    {"max_samples": 256, "forests": 6},
    {"max_samples": 256, "forests": 3},
    {"forests": 1},
    {"long_rows": 30},
    {"forests": 1, "n_estimators": 100},
    {"difference_min_acf": 0.5},
    {"difference_min_acf": 0.9},
)
# The operating point (applied to the scores without a refit). `train_quantile` 0.995 and
# `train_sigmas` 0 / 3.0 were never picked in the 648-candidate run (results/history.md): dropped.
# `rearm_rows`: after a flag, wait for that many rows where no metric moved (0: the cool-down
# only); 16 was never picked in the 864-candidate run (results/history.md): dropped.
# Issue 17: the forest's seed may move the score by at most a point; a fold picks within it.
MAX_SPREAD = 1.0
JUDGE_GRID: dict[str, tuple[Any, ...]] = {
    "min_deviation_z": (3.0, 4.0, 5.0),
    "record_margin": (-0.04, -0.02, 0.0),
    "record_quantile": (1.0, 0.995),
    "cooldown_rows": (100, 300),
    "train_quantile": (0.99,),
    "train_sigmas": (2.5,),
    "smooth_rows": (1, 3, 5),
    "rearm_rows": (0, 4, 8),
}

AWS_KINDS = (
    ("ec2_cpu_utilization", "aws_cpu"),
    ("rds_cpu_utilization", "aws_rds"),
    ("ec2_network_in", "aws_network"),
    ("NetworkIn", "aws_network"),
    ("ec2_disk_write_bytes", "aws_disk"),
    ("elb_request_count", "aws_elb"),
    ("grok_asg", "aws_asg"),
)


def group_of(name: str) -> str:
    """The fold of a file: its NAB group, the AWS series by metric kind, or `synthetic`."""
    top = name.split("/", 1)[0]
    if top != "realAWSCloudwatch":
        return top
    return next((group for key, group in AWS_KINDS if key in name), "aws_other")


@dataclass(frozen=True)
class File:
    name: str
    values: FloatArray
    windows: list[tuple[int, int]]

    @property
    def group(self) -> str:
        return group_of(self.name)


def load_corpus(data: Path, quick: bool) -> list[File]:
    spans = json.loads((data / "windows.json").read_text())
    files = []
    for name in sorted(spans):
        frame = pd.read_csv(data / name)
        windows = nab.window_rows(list(frame["timestamp"].astype(str)), spans[name])
        files.append(File(name, frame["value"].to_numpy(dtype=float), windows))
    files += [File(s.name, s.values, s.windows) for s in nab_stress.stress_series()]
    if quick:  # two files a group: enough to exercise every fold
        files = [f for i, f in enumerate(files)
                 if [g.group for g in files[:i]].count(f.group) < 2]
    return files


def candidates(set_ups: int = len(SCORE_CHOICES)) -> list[tuple[int, dict[str, Any]]]:
    """Every (forest set-up, operating point) of the first `set_ups` set-ups; the product's
    current defaults come first, so that a tie keeps them."""
    judged = [dict(zip(JUDGE_GRID, combo, strict=True))
              for combo in itertools.product(*JUDGE_GRID.values())]
    current = DetectorSettings()
    judged.sort(key=lambda knobs: any(getattr(current, k) != v for k, v in knobs.items()))
    return [(i, knobs) for i in range(set_ups) for knobs in judged]


def settings_of(score_choice: int, knobs: dict[str, Any]) -> DetectorSettings:
    return replace(DetectorSettings(), **SCORE_CHOICES[score_choice], **knobs)


def mean_of(batches: Sequence[ScoredBatch]) -> ScoredBatch:
    """The batch of the forests' mean: scores and training scores averaged (the rest does not
    depend on the forest)."""
    first = batches[0]
    blocks = tuple((start, np.mean([b.blocks[i][1] for b in batches], axis=0))
                   for i, (start, _) in enumerate(first.blocks))
    return ScoredBatch(np.mean([b.scores for b in batches], axis=0), first.deviation,
                       first.outside, first.seasons, blocks)


def cache_key(single: DetectorSettings) -> str:
    """The settings that move a forest's scores: every knob but the operating point's, which
    only `judge` reads (a new one reads the scores cached before it)."""
    return repr({f.name: getattr(single, f.name) for f in fields(single)
                 if f.name not in OPERATING_POINT_KNOBS})


def single_run(files: Sequence[File], single: DetectorSettings, seed: int,
               cache: Path | None) -> list[ScoredBatch]:
    """One forest's scores of every file (from `cache` if there), keyed by the settings, so
    that a change of any default that scores differently never reads old scores."""
    digest = hashlib.sha256(cache_key(single).encode()).hexdigest()[:12]
    path = cache / f"single-{digest}-seed{seed}-{len(files)}.pkl" if cache else None
    if path and path.exists():
        found: list[ScoredBatch] = pickle.loads(path.read_bytes())
        return found
    found = [score_batch({"value": f.values}, single, seed) for f in files]
    if path:
        path.write_bytes(pickle.dumps(found))
    return found


def scored(files: Sequence[File], choice: int, seed: int, cache: Path | None) -> list[ScoredBatch]:
    """The forests' scores of every file for one set-up and seed. K forests seeded `seed` are
    K single forests seeded seed * K .. seed * K + K - 1, averaged (what the detector computes,
    to 1e-12: tests/test_anomaly_forests.py): so set-ups that differ only in their number of
    forests, and benchmarks/nab_seed.py, share the single forests' cached scores."""
    settings = settings_of(choice, {})
    single, k = replace(settings, forests=1), settings.forests
    runs = [single_run(files, single, s, cache) for s in range(seed * k, seed * k + k)]
    return [mean_of([run[f] for run in runs]) for f in range(len(files))]


@dataclass
class Table:
    """Per candidate, seed and file: the raw NAB standard score and the flags outside windows."""

    raw: FloatArray  # (candidates, seeds, files)
    outside: npt.NDArray[np.int_]
    windows: npt.NDArray[np.int_]  # per file
    profile: nab.Profile = STANDARD  # the NAB profile `raw` was scored with

    @property
    def set_ups(self) -> int:
        return len(self.raw) // len(candidates(1))


def outside_flags(flags: npt.NDArray[np.bool_], windows: Sequence[tuple[int, int]]) -> int:
    inside = np.zeros(len(flags), dtype=bool)
    for left, right in windows:
        inside[left : right + 1] = True
    inside[: nab.probation_rows(len(flags))] = True
    return int((flags & ~inside).sum())


def build_table(files: Sequence[File], seeds: Sequence[int], cache: Path | None,
                set_ups: int) -> Table:
    found = candidates(set_ups)
    raw = np.zeros((len(found), len(seeds), len(files)))
    outside = np.zeros(raw.shape, dtype=int)
    for s, seed in enumerate(seeds):
        for choice in range(set_ups):
            batches = scored(files, choice, seed, cache)
            for c, (score_choice, knobs) in enumerate(found):
                if score_choice != choice:
                    continue
                settings = settings_of(choice, knobs)
                for f, (file, batch) in enumerate(zip(files, batches, strict=True)):
                    flags = judge(batch, settings).flags
                    raw[c, s, f] = nab.score_file(flags.copy(), file.windows, STANDARD)
                    outside[c, s, f] = outside_flags(flags, file.windows)
    return Table(raw, outside, np.array([len(f.windows) for f in files]))


def pooled(table: Table, rows: npt.NDArray[np.bool_]) -> FloatArray:
    """The normalised score of the files `rows`, per candidate and seed (NaN: no windows)."""
    windows = int(table.windows[rows].sum())
    if windows == 0:
        return np.full(table.raw.shape[:2], np.nan)
    return np.asarray(nab.normalised(table.raw[:, :, rows].sum(axis=2), windows, table.profile))


def pick(table: Table, rows: npt.NDArray[np.bool_], max_spread: float = np.inf) -> int:
    """The candidate with the best mean (over seeds) score on the files `rows` among those whose
    seeds' scores there span at most `max_spread` points, the first such on a tie; when none
    does, the one whose seeds' scores span the least."""
    scores = pooled(table, rows)
    spread = np.ptp(scores, axis=1)
    within = spread <= max_spread
    if not within.any():
        return int(np.argmin(spread))
    return int(np.argmax(np.where(within, scores.mean(axis=1), -np.inf)))


@dataclass
class Fold:
    group: str
    chosen: int
    development: FloatArray  # per seed, on the training groups
    held_out: FloatArray  # per seed, on the group (NaN: it has no windows)
    false_positives: npt.NDArray[np.int_]  # per seed, flags outside windows in the group


def cross_validate(table: Table, groups: Sequence[str], max_spread: float = np.inf
                   ) -> tuple[list[Fold], FloatArray]:
    """Every fold, and the held-out score pooled over all files (each judged by the candidate
    its fold picked), per seed."""
    names = np.array(groups)
    folds = []
    raw = np.zeros(table.raw.shape[1])
    for group in sorted(set(groups)):
        test = names == group
        chosen = pick(table, ~test, max_spread)
        folds.append(Fold(group, chosen, pooled(table, ~test)[chosen], pooled(table, test)[chosen],
                          table.outside[chosen][:, test].sum(axis=1)))
        raw += table.raw[chosen][:, test].sum(axis=1)
    overall = nab.normalised(raw, int(table.windows.sum()), table.profile)
    return folds, np.asarray(overall)


def throughput(files: Sequence[File], settings: DetectorSettings) -> tuple[float, float, int]:
    """`detect_series` at `settings`, seed 0, over the NAB files: rows per wall and CPU second."""
    real = [f for f in files if not f.name.startswith("synthetic/")]
    wall, cpu = time.perf_counter(), time.process_time()
    for file in real:
        detect_series(file.values, settings, random_state=0)
    rows = sum(len(f.values) for f in real)
    return rows / (time.perf_counter() - wall), rows / (time.process_time() - cpu), rows


def runner() -> str:
    """How this process was started, for a report's command: its niceness as it ran (the
    reports used to say nice 19 whatever the run's was)."""
    niceness = os.nice(0)
    nice = f"nice -n {niceness} " if niceness else ""
    return f"PYTHONPATH=operator {nice}.venv/bin/python"


def describe(index: int) -> str:
    score_choice, knobs = candidates()[index]  # the set-ups' order is the same for any number
    parts = [f"{k}={v}" for k, v in {**SCORE_CHOICES[score_choice], **knobs}.items()]
    return ", ".join(parts)


def _cells(values: FloatArray) -> str:
    if np.isnan(values).all():
        return "n/a (no windows)"
    return f"{values.mean():.1f} ({' / '.join(f'{v:.1f}' for v in values)})"


def fold_rows(files: Sequence[File], table: Table, folds: Sequence[Fold]) -> list[str]:
    """One table row per held-out group."""
    names = np.array([f.group for f in files])
    rows = []
    for fold in folds:
        test = [f for f in files if f.group == fold.group]
        rows.append(
            f"| {fold.group} | {len(test)} | {sum(len(f.windows) for f in test)} | "
            f"{_cells(fold.development)} | {np.ptp(fold.development):.1f} | "
            f"{_cells(fold.held_out)} | "
            f"{' / '.join(map(str, fold.false_positives))} | {describe(fold.chosen)} | "
            f"{_cells(pooled(table, names == fold.group)[0])} |")
    return rows


def bound_caveat(seeds: Sequence[int], max_spread: float) -> str:
    """What the bound on the seeds' range means for the seeds given: with one seed every
    candidate spans 0 points and the bound picks nothing."""
    if len(seeds) > 1 or not np.isfinite(max_spread):
        return ""
    return "; with one seed every candidate spans 0 points, so the bound rules none out"


def report(files: Sequence[File], seeds: Sequence[int], table: Table, speed: tuple[float, ...],
           command: str, max_spread: float = np.inf) -> tuple[str, dict[str, Any]]:
    groups = [f.group for f in files]
    folds, overall = cross_validate(table, groups, max_spread)
    unbounded = cross_validate(table, groups)[1]
    everything = np.ones(len(files), dtype=bool)
    final = pick(table, everything, max_spread)
    final_scores = pooled(table, everything)[final]
    seeds_text = ", ".join(map(str, seeds))
    lines = [
        f"# NAB leave-one-group-out cross-validation ({len(files)} files, "
        f"{int(table.windows.sum())} windows, {len(set(groups))} groups)",
        "",
        f"Command: `{command}`",
        "",
        f"NAB standard score at the detector's own flags; each cell: mean over forest seeds "
        f"({seeds_text}), then each seed. {len(table.raw)} candidates "
        f"({table.set_ups} forest set-ups: {SCORE_CHOICES[: table.set_ups]} x "
        f"{len(candidates(1))} operating points: {JUDGE_GRID}). Each fold picks the best "
        f"mean on its training groups among the candidates whose seeds there span at most "
        f"{max_spread} points (none such: the narrowest){bound_caveat(seeds, max_spread)}.",
        "",
        "| held-out group | files | windows | development folds | seeds' range, development | "
        "held out | flags outside windows (held out) | picked on the training folds | "
        "product defaults |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += fold_rows(files, table, folds)
    lines += [
        "",
        f"**Held out, pooled over every fold: {_cells(overall)}** (spread over seeds "
        f"{overall.max() - overall.min():.1f} points). Picked by best mean alone, without the "
        f"bound on the seeds' range: {_cells(unbounded)} (spread {np.ptp(unbounded):.1f}).",
        f"Picked on all groups (what the product's defaults would be): {describe(final)}; "
        f"on all the development data it scores {_cells(final_scores)} (a development figure, "
        "not a held-out one). The product's defaults as they stand (candidate 0, no choice per "
        f"fold) score {_cells(pooled(table, everything)[0])} on all of it.",
        "",
        f"Throughput of `detect` at the product's defaults as they stand (seed 0, "
        f"{speed[2]:,} NAB rows): "
        f"{speed[0]:,.0f} rows/s wall, {speed[1]:,.0f} rows per CPU second (shared 2-core "
        f"machine, niceness {os.nice(0)}).",
        "",
        "Groups: " + "; ".join(f"`{key}` -> {group}" for key, group in AWS_KINDS)
        + "; artificialWithAnomaly, artificialNoAnomaly as in NAB; synthetic: "
        "`benchmarks/nab_stress.py` (one series per event kind, fixed seeds).",
        "",
    ]
    data = {
        "command": command, "seeds": list(seeds), "candidates": len(table.raw),
        "folds": [{"group": f.group, "picked": describe(f.chosen),
                   "development": f.development.tolist(),
                   "held_out": [None if np.isnan(v) else v for v in f.held_out.tolist()],
                   "false_positives": f.false_positives.tolist()} for f in folds],
        "held_out_pooled": overall.tolist(),
        "max_spread": max_spread if np.isfinite(max_spread) else None,
        "held_out_pooled_unbounded": unbounded.tolist(), "product_defaults": describe(final),
        "product_defaults_development": final_scores.tolist(),
        "rows_per_second": speed[0], "rows_per_cpu_second": speed[1],
    }
    return "\n".join(lines), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/anomaly"))
    parser.add_argument("--seeds", default="0,1,2", help="forest seeds, comma-separated")
    parser.add_argument("--quick", action="store_true", help="two files a group (exploring)")
    parser.add_argument("--cache", type=Path, help="directory keeping the forests' scores")
    parser.add_argument("--set-ups", type=int, default=len(SCORE_CHOICES),
                        help="try the first N forest set-ups of SCORE_CHOICES only")
    parser.add_argument("--out", type=Path, default=RESULTS / "nab_cv")
    parser.add_argument("--max-spread", type=float, default=MAX_SPREAD,
                        help="points the seeds' scores may span on the training folds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    files = load_corpus(args.data, args.quick)
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    table = build_table(files, seeds, args.cache, args.set_ups)
    speed = throughput(files, DetectorSettings())
    command = f"{runner()} benchmarks/nab_cv.py " + \
        f"--seeds {args.seeds} --set-ups {args.set_ups} --max-spread {args.max_spread}" + \
        (" --quick" if args.quick else "") + \
        ("" if args.out.resolve() == RESULTS / "nab_cv" else f" --out {args.out}")
    text, data = report(files, seeds, table, speed, command, args.max_spread)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
