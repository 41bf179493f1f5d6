"""How much the forest's seed moves the NAB standard score, by the number of forests averaged.

The detector's score is the mean of `DetectorSettings.forests` forests, seeded
`random_state * forests + i`: the mean of K consecutive single-forest runs (seeds gK .. gK+K-1)
is exactly the run with `forests=K` and `random_state=g`. So the single-forest scores of N seeds
give N / K independent K-forest runs for every K, at the cost of N single-forest runs. Each run is
judged at the product's operating point on every file of `nab_cv`'s corpus (NAB and the synthetic
stress series) and pooled (NAB standard profile); the table gives, per K, the mean, the standard
deviation and the range of the pooled score over the runs, and the files that move most.

Run: `PYTHONPATH=operator nice -n 10 python benchmarks/nab_seed.py [--seeds 36] [--cache DIR]`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

import nab
import nab_cv
from adaptive_operator.domain.healing.anomaly import (
    DetectorSettings,
    ScoredBatch,
    judge,
    smoothed,
    threshold_of,
)

RESULTS = nab_cv.RESULTS / "nab_seed.md"
FloatArray = npt.NDArray[np.float64]


def raw_per_file(files: Sequence[nab_cv.File], batches: Sequence[ScoredBatch],
                 settings: DetectorSettings) -> FloatArray:
    return np.array([nab.score_file(judge(b, settings).flags.copy(), f.windows, nab_cv.STANDARD)
                     for f, b in zip(files, batches, strict=True)])


def runs_of(singles: Sequence[Sequence[ScoredBatch]], forests: int, files: Sequence[nab_cv.File],
            settings: DetectorSettings) -> FloatArray:
    """Raw score per run (random_state 0, 1, ...) with `forests` forests, and file."""
    runs = []
    for g in range(len(singles) // forests):
        members = singles[g * forests : (g + 1) * forests]
        batches = [nab_cv.mean_of([m[f] for m in members]) for f in range(len(files))]
        runs.append(raw_per_file(files, batches, settings))
    return np.array(runs)


def judged_and_threshold(batch: ScoredBatch, settings: DetectorSettings) -> FloatArray:
    """Per row: the score it is judged by (smoothed), the threshold of its block, and the
    flag."""
    threshold = np.zeros(len(batch.scores))
    for start, train_scores in batch.blocks:
        threshold[start : start + settings.refit_every] = threshold_of(train_scores, settings)
    return np.array([smoothed(batch.scores, settings.smooth_rows), threshold,
                     judge(batch, settings).flags])


def noise_of(singles: Sequence[Sequence[ScoredBatch]], forests: int,
             files: Sequence[nab_cv.File], settings: DetectorSettings) -> FloatArray:
    """How much the seed moves, on a row after probation (standard deviation over the runs,
    mean over the rows and files): the judged score, its block's threshold, and the score's
    distance to the threshold (what the gate decides on); and how many windows two runs
    disagree on (detected by one, missed by the other)."""
    found, split = [], 0.0
    for f, file in enumerate(files):
        runs = np.array([judged_and_threshold(nab_cv.mean_of([m[f] for m in
                                                       singles[g * forests : (g + 1) * forests]]),
                                              settings)
                         for g in range(len(singles) // forests)])
        rows = slice(nab.probation_rows(len(file.values)), None)
        score, threshold = runs[:, 0, rows], runs[:, 1, rows]
        found.append([a.std(axis=0, ddof=1).mean() for a in (score, threshold, score - threshold)])
        detected = [runs[:, 2, left : right + 1].any(axis=1) for left, right in file.windows]
        # Two runs drawn at random disagree on a window with chance 2 p (1 - p), unbiased.
        split += sum(2 * d.mean() * (1 - d.mean()) * d.size / (d.size - 1) for d in detected)
    return np.append(np.mean(found, axis=0), split)


def flags_of(file: nab_cv.File, batch: ScoredBatch, settings: DetectorSettings) -> str:
    flags = judge(batch, settings).flags
    flags[: nab.probation_rows(len(flags))] = False
    return ", ".join(map(str, np.flatnonzero(flags)))


def example(files: Sequence[nab_cv.File], singles: Sequence[Sequence[ScoredBatch]],
            raw: FloatArray, settings: DetectorSettings) -> list[str]:
    """The flags of the file that moves most, at its best and its worst single-forest run."""
    f = int(np.argmax(raw.std(axis=0)))
    best, worst = int(np.argmax(raw[:, f])), int(np.argmin(raw[:, f]))
    return ["", f"`{files[f].name}`, windows (rows) {files[f].windows}, flags after probation:"]\
        + [f"- seed {run} (raw {raw[run, f]:+.2f}): {flags_of(files[f], singles[run][f], settings)}"
           for run in (best, worst)]


def tables(files: Sequence[nab_cv.File], table: dict[int, FloatArray],
           noise: dict[int, FloatArray]) -> list[str]:
    """The pooled score's spread over the runs, and how far the seed moves a row, per number
    of forests."""
    windows = sum(len(f.windows) for f in files)
    lines = ["| forests of 30 trees | runs | mean | standard deviation | range (max - min) |",
             "|---|---|---|---|---|"]
    for forests, raw in table.items():
        pooled = np.array([nab.normalised(r, windows, nab_cv.STANDARD) for r in raw.sum(axis=1)])
        lines.append(f"| {forests} | {len(pooled)} | {pooled.mean():.1f} | {pooled.std():.2f} | "
                     f"{pooled.max() - pooled.min():.1f} |")
    lines += ["", "| forests of 30 trees | score | threshold | score minus threshold | "
              "windows two runs disagree on |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v[0]:.4f} | {v[1]:.4f} | {v[2]:.4f} | {v[3]:.1f} |"
              for k, v in noise.items()]
    return lines


def report(files: Sequence[nab_cv.File], found: dict[str, tuple[dict[int, FloatArray],
                                                                 dict[int, FloatArray]]],
           command: str) -> str:
    """`found`: per threshold rule (the product's first), the pooled scores and the noise."""
    windows = sum(len(f.windows) for f in files)
    lines = [
        f"# The forest's seed and the NAB score ({len(files)} files, {windows} windows)", "",
        f"Command: `{command}`", "",
        "NAB standard, pooled over every file, at the product's operating point; one run per "
        "random_state. A window flipped from an early detection to a miss moves the pooled "
        f"score by up to {100 / windows:.1f} points. Second table of each rule: how far the "
        "seed moves a row's judged score (smoothed), the threshold of its block and the gap "
        "between them (standard deviation over the runs, mean over the rows after probation "
        "and the files), in score units; and how many windows two runs disagree on (one "
        "detects, the other misses; expected over pairs of runs).",
    ]
    for rule, (table, noise) in found.items():
        lines += ["", f"## Rule: {rule}", "", *tables(files, table, noise)]
    table = next(iter(found.values()))[0]
    counts = list(table)
    lines += ["", "Files whose raw score moves most with the seed at the product's rule "
              "(standard deviation over the runs; forests "
              f"{' / '.join(map(str, counts))}):", ""]
    spread = {k: raw.std(axis=0) for k, raw in table.items()}
    for i in np.argsort(-spread[counts[0]])[:6]:
        lines.append(f"- `{files[i].name}`: {' / '.join(f'{s[i]:.2f}' for s in spread.values())}")
    return "\n".join(lines) + "\n"


def record_rule(settings: DetectorSettings) -> str:
    at = ("the highest recent normal score" if settings.record_quantile >= 1.0
          else f"the recent normal scores' {settings.record_quantile} quantile")
    return f"record at {at} {settings.record_margin:+}"


def highest_record(settings: DetectorSettings) -> DetectorSettings:
    """The record rule `detect` had before `record_quantile`: the highest score, within 0.04."""
    return replace(settings, record_quantile=1.0, record_margin=-0.04)


def rules() -> dict[str, DetectorSettings]:
    """The product's rule; the same threshold with the record at the highest recent score;
    and the threshold at the training scores' quantile with that record (the rule before)."""
    product = replace(DetectorSettings(), forests=1)
    highest = highest_record(product)
    before = replace(highest, train_sigmas=0.0)
    return {
        f"the product's (threshold at mean + {product.train_sigmas} sd, {record_rule(product)})":
            product,
        f"threshold at mean + {highest.train_sigmas} sd, {record_rule(highest)}": highest,
        f"threshold at the training scores' {before.train_quantile} quantile, "
        f"{record_rule(before)}": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/anomaly"))
    parser.add_argument("--seeds", type=int, default=36, help="single-forest runs")
    parser.add_argument("--forests", default="1,3,6,12", help="numbers of forests to average")
    parser.add_argument("--cache", type=Path, help="directory keeping the forests' scores")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = nab_cv.load_corpus(args.data, quick=False)
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    single = replace(DetectorSettings(), forests=1)
    singles = [nab_cv.single_run(files, single, seed, args.cache) for seed in range(args.seeds)]
    counts = [int(k) for k in args.forests.split(",")]
    found = {rule: ({k: runs_of(singles, k, files, settings) for k in counts},
                    {k: noise_of(singles, k, files, settings) for k in counts
                     if args.seeds // k >= 2})
             for rule, settings in rules().items()}
    settings = next(iter(rules().values()))
    command = (f"{nab_cv.runner()} benchmarks/nab_seed.py "
               f"--seeds {args.seeds} --forests {args.forests}")
    text = report(files, found, command) + "\n".join(
        example(files, singles, next(iter(found.values()))[0][1], settings)) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
