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
from adaptive_operator.domain.healing.anomaly import DetectorSettings, ScoredBatch, judge

RESULTS = nab_cv.RESULTS / "nab_seed.md"
FloatArray = npt.NDArray[np.float64]


def mean_of(batches: Sequence[ScoredBatch]) -> ScoredBatch:
    """The batch of the forests' mean: scores and training scores averaged (the rest does not
    depend on the forest)."""
    first = batches[0]
    blocks = tuple((start, np.mean([b.blocks[i][1] for b in batches], axis=0))
                   for i, (start, _) in enumerate(first.blocks))
    return ScoredBatch(np.mean([b.scores for b in batches], axis=0), first.deviation,
                       first.outside, first.seasons, blocks)


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
        batches = [mean_of([m[f] for m in members]) for f in range(len(files))]
        runs.append(raw_per_file(files, batches, settings))
    return np.array(runs)


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


def report(files: Sequence[nab_cv.File], table: dict[int, FloatArray], command: str) -> str:
    windows = sum(len(f.windows) for f in files)
    lines = [
        f"# The forest's seed and the NAB score ({len(files)} files, {windows} windows)", "",
        f"Command: `{command}`", "",
        "NAB standard, pooled over every file, at the product's operating point; one run per "
        "random_state. A window flipped from an early detection to a miss moves the pooled "
        f"score by up to {100 / windows:.1f} points.", "",
        "| forests of 30 trees | runs | mean | standard deviation | range (max - min) |",
        "|---|---|---|---|---|",
    ]
    for forests, raw in table.items():
        pooled = np.array([nab.normalised(r, windows, nab_cv.STANDARD) for r in raw.sum(axis=1)])
        lines.append(f"| {forests} | {len(pooled)} | {pooled.mean():.1f} | {pooled.std():.2f} | "
                     f"{pooled.max() - pooled.min():.1f} |")
    lines += ["", "Files whose raw score moves most with the seed (standard deviation over the "
              "runs; one forest / three):", ""]
    single, three = table[1].std(axis=0), table.get(3, table[1]).std(axis=0)
    for i in np.argsort(-single)[:6]:
        lines.append(f"- `{files[i].name}`: {single[i]:.2f} / {three[i]:.2f}")
    return "\n".join(lines) + "\n"


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
    single = nab_cv.SCORE_CHOICES.index({"forests": 1})
    singles = [nab_cv.scored(files, single, seed, args.cache) for seed in range(args.seeds)]
    settings = replace(DetectorSettings(), forests=1)
    table = {k: runs_of(singles, k, files, settings) for k in map(int, args.forests.split(","))}
    command = ("PYTHONPATH=operator nice -n 10 .venv/bin/python benchmarks/nab_seed.py "
               f"--seeds {args.seeds} --forests {args.forests}")
    text = report(files, table, command) + "\n".join(
        example(files, singles, table[1], settings)) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
