"""Tables (markdown + JSON) and the cost-curve plot of the cross-validated scaling benchmark."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scaling_cv import BUDGET, FAMILIES, RIVALS, Table, keys_of, pooled, score, seasonal_names
from scaling_data import SEGMENTS, STARTUP_SECONDS, Trace
from scaling_runs import DEFAULT_OURS, family_of

COMMAND = "PYTHONPATH=operator nice -n 10 .venv/bin/python benchmarks/scaling_cv.py"
NAMES = {"ours": "adaptive-operator (knobs picked on folds)",
         "ours default": "adaptive-operator, shipped defaults",
         "ours previous default": "adaptive-operator, previous defaults (no fallback)",
         "headroom": "HPA + static headroom h", "keda": "KEDA (HPA on the same query)",
         "phpa": "Predictive HPA", "crane": "Crane EHPA (DSP)", "oracle": "oracle",
         "frontier": "oracle with pods run e above target (perfect foresight at a budget)"}


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def _pct(x: float, digits: int) -> str:
    return "n/a" if x != x else f"{x:.{digits}%}"


def _pool_table(table: Table, rows: list[dict[str, object]], traces: set[str]) -> list[str]:
    out = ["| scaler | picked on the training folds (most often) | development: unserved / "
           "replica-h vs HPA | **held-out: unserved vs HPA** | **held-out: replica-h vs HPA** "
           "| held-out: time under capacity | held-out: unserved share of demand |",
           "|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        dev, held = pooled(table, rows, family, traces)
        picked = _most_picked(rows, family, traces)
        out.append(f"| {NAMES[family]} | {picked} | {_fmt(dev.unserved)} / "
                   f"{_fmt(dev.cost, 3)} | **{_fmt(held.unserved)}** | **{_fmt(held.cost, 3)}** | "
                   f"{_pct(held.under_time, 1)} | {_pct(held.unserved_share, 3)} |")
    return out


def _rival_table(table: Table, rows: list[dict[str, object]], traces: set[str]) -> list[str]:
    out = _header("rival", "rival picked (most often)",
                  "**rival held-out: unserved / replica-h vs HPA**",
                  "adaptive-operator picked at the rival's training replica-hours (most often)",
                  "development: unserved / replica-h", "**held-out: unserved / replica-h vs HPA**")
    for rival in RIVALS:
        _, theirs = pooled(table, rows, rival, traces)
        dev, ours = pooled(table, rows, f"ours@{rival}", traces)
        out.append(f"| {NAMES.get(rival, rival)} | {_most_picked(rows, rival, traces)} | "
                   f"**{_fmt(theirs.unserved)} / {_fmt(theirs.cost, 3)}** | "
                   f"{_most_picked(rows, f'ours@{rival}', traces)} | {_fmt(dev.unserved)} / "
                   f"{_fmt(dev.cost, 3)} | **{_fmt(ours.unserved)} / {_fmt(ours.cost, 3)}** |")
    return out


def _header(*columns: str) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _most_picked(rows: list[dict[str, object]], family: str, traces: set[str]) -> str:
    picks = Counter(str(r["picked"]) for r in rows
                    if r["family"] == family and r["held_out"] in traces)
    return picks.most_common(1)[0][0] if picks else "n/a"


def _per_trace(rows: list[dict[str, object]]) -> list[str]:
    out = ["| held-out trace | scaler | picked | dev unserved / cost | held-out unserved / cost "
           "| held-out under-time |", "|---|---|---|---|---|---|"]
    for r in rows:
        d, h = r["development"], r["held"]
        out.append(f"| {r['held_out']} | {r['family']} | {r['picked']} | "
                   f"{_fmt(d['unserved'])} / {_fmt(d['cost'], 3)} | "  # type: ignore[index]
                   f"{_fmt(h['unserved'])} / {_fmt(h['cost'], 3)} | "  # type: ignore[index]
                   f"{h['under_time']:.1%} |")  # type: ignore[index]
    return out


def curve(table: Table, names: set[str]) -> dict[str, dict[str, float]]:
    """Whole-trace figures of every candidate over the given traces (the cost curve)."""
    keys = keys_of(sorted(names), range(SEGMENTS))
    labels = next(iter(table.values())).keys()
    return {label: {"unserved": score(table, label, keys).unserved,
                    "cost": score(table, label, keys).cost} for label in labels}


def _plot_ours(ax: Any, points: dict[str, dict[str, float]]) -> None:
    """The product's candidates, with and without the persistence fallback, and their fronts."""
    for fallback, color in (("off", "tab:olive"), ("on", "tab:green")):
        ours = sorted((p["cost"], p["unserved"]) for k, p in points.items()
                      if family_of(k) == "ours" and k.endswith(f"fallback={fallback}"))
        costs, unserved = zip(*ours, strict=True)
        ax.scatter(costs, unserved, s=10, color=color, alpha=0.5,
                   label=f"adaptive-operator, persistence fallback {fallback}: quantile x "
                         "look-ahead x scale-down")
        ax.plot(*zip(*_front(ours), strict=True), color=color, lw=1.5)


def _plot_peers(ax: Any, points: dict[str, dict[str, float]]) -> None:
    """HPA with headroom as a line, each other peer's candidates as points."""
    head = sorted((p["cost"], p["unserved"]) for k, p in points.items()
                  if family_of(k) in ("headroom", "hpa"))
    ax.plot(*zip(*head, strict=True), "o-", color="tab:blue", ms=4, label="HPA + headroom h")
    for family, marker in (("keda", "s"), ("phpa", "^"), ("crane", "v"), ("oracle", "*"),
                           ("frontier", "P")):
        pts = [(p["cost"], p["unserved"]) for k, p in points.items() if family_of(k) == family]
        costs, unserved = zip(*pts, strict=True)
        ax.scatter(costs, unserved, marker=marker, s=40, label=NAMES[family])


def plot(points: dict[str, dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    _plot_ours(ax, points)
    _plot_peers(ax, points)
    ax.scatter([1.0], [1.0], color="black", s=60, zorder=5, label="reactive HPA")
    ax.axvline(BUDGET, color="grey", ls=":", lw=1)
    ax.axhline(0.2, color="grey", ls="--", lw=1, label="target: 80% less unserved")
    ax.set_xlabel("replica-hours / HPA's")
    ax.set_ylabel("unserved demand / HPA's")
    ax.set_xlim(0.85, 1.25)
    ax.set_ylim(-0.02, 1.6)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes, by cost."""
    out: list[tuple[float, float]] = []
    for cost, unserved in sorted(points):
        if not out or unserved < out[-1][1]:
            out.append((cost, unserved))
    return out


def _scheme_sections(table: Table, folds: dict[str, list[dict[str, object]]], real: set[str],
                     every: set[str], bursty: set[str]) -> list[str]:
    """Each fold scheme but the rival one, pooled over each group of traces."""
    lines: list[str] = []
    for scheme, rows in folds.items():
        if scheme == RIVAL_SCHEME:
            continue
        lines += [f"## {scheme}: seasonal real traces ({', '.join(sorted(real))})", ""]
        lines += [*_pool_table(table, rows, real), ""]
        lines += [f"## {scheme}: every seasonal trace, synthetic stress cases included", ""]
        lines += [*_pool_table(table, rows, every), ""]
        lines += [f"## {scheme}: bursty trace ({', '.join(sorted(bursty))})", ""]
        lines += [*_pool_table(table, rows, bursty), ""]
    return lines


def _rival_sections(table: Table, rival_rows: list[dict[str, object]], real: set[str],
                    every: set[str], bursty: set[str]) -> list[str]:
    lines = [f"## {RIVAL_SCHEME}: leave one trace out", "", RIVAL_NOTE, ""]
    for title, names in (("seasonal real traces", real), ("every seasonal trace", every),
                         ("bursty trace", bursty)):
        lines += [f"{title}:", "", *_rival_table(table, rival_rows, names), ""]
    return lines


def write(table: Table, traces: list[Trace], folds: dict[str, list[dict[str, object]]],
          results: Path) -> None:
    real = seasonal_names(traces, real_only=True)
    every = seasonal_names(traces, real_only=False)
    bursty = {t.name for t in traces if not t.seasonal}
    lines = [
        "# Scaling, cross-validated: the product against each peer on held-out folds", "",
        f"Start-up {STARTUP_SECONDS:g} s for every scaler (the same pod model as `replay`); target "
        "per replica = the trace's median load / 20. Each trace is cut into "
        f"{SEGMENTS} contiguous segments. A scaler's knobs are picked on the training segments "
        f"(least unserved demand at <= {BUDGET:.2f}x HPA's replica-hours there; the cheapest "
        "point when none fits) and scored on the held-out ones; `development` is the same pick "
        "scored on its training segments. Ratios are against reactive HPA on the same rows.", "",
        f"Command: `{COMMAND}`", ""]
    lines += [WHY_NOTE, "", FRONTIER_NOTE, ""]
    lines += _scheme_sections(table, folds, real, every, bursty)
    lines += _rival_sections(table, folds[RIVAL_SCHEME], real, every, bursty)
    lines += ["## Leave one trace out, per trace", "", *_per_trace(folds["leave one trace out"])]
    pictured = real or every  # the real seasonal traces; the synthetic ones when run alone
    points = curve(table, pictured)
    plot(points, results / "scaling_cost_curve.png",
         f"Whole traces {', '.join(sorted(pictured))}: unserved demand vs replica-hours, "
         "against HPA")
    lines += ["", "## The cost curve", "",
              "![cost curve](scaling_cost_curve.png)", "",
              f"Whole seasonal real traces (every candidate, no selection: a picture of the "
              f"trade-off, not a held-out figure). Default operating point `{DEFAULT_OURS}`.", ""]
    lines += ["| candidate | unserved vs HPA | replica-h vs HPA |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(p['unserved'])} | {_fmt(p['cost'], 3)} |"
              for k, p in sorted(points.items(), key=lambda kv: kv[1]["cost"])]
    lines += ["", DATA_NOTE]
    (results / "scaling_cv.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dump = {"folds": folds, "curve": points,
            "table": {t: {k: [asdict(f) for f in v] for k, v in labels.items()}
                      for t, labels in table.items()}}
    (results / "scaling_cv.json").write_text(json.dumps(dump, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


WHY_NOTE = """## Why the forecast's floor left demand unserved (issue 17), and what changed

On the rows where the load exceeded the serving pods, the seasonal forecast's floor was rarely too
low at a rise: most of the unserved demand fell on the rows without a trusted forecast, where the
product scaled like plain HPA. The forecast needs 3 cycles of its season before it is trusted, and
on the real traces the daily season is detected only after days (on the Google trace, 9). Since
then, while no forecast is trusted, the floor comes from persistence with its own realised band
(`domain/forecasting/persistence.py`: the last value plus the chosen quantile of the rises over a
look-ahead in the last day), and only while the last value forecasts the load a look-ahead ahead
no worse than the mean of the look-ahead's last rows (the guard's tolerance, on at least three
look-aheads of errors): on the bursty trace's second-level rows it stays off. It never scales
down. The knob is `fallback=on|off` below; "previous defaults" is the shipped point without it.
Tried and not kept: the same band always maxed with the forecast's floor (a little less unserved
demand for more replica-hours, on the same curve), and the quantile of the highest rise over the
look-ahead without the guard (1.65x HPA's replica-hours on the bursty trace)."""

FRONTIER_NOTE = """## How far perfect foresight gets within the budget (issue 17's target)

The oracle serves every row at 1.011x HPA's replica-hours on the seasonal real traces: in this pod
model a pod serves up to its target, and HPA, which adds a pod only once the load passes the
target by its 10% tolerance, runs its pods over it and saves the replica-hours. `frontier e=...`
is the oracle with its pods allowed to run `e` above their target (the demand above the target
still counts as unserved): perfect foresight at a lower cost. On the whole seasonal real traces
(the cost curve's table) it leaves 0.15x HPA's unserved demand at 0.997x and 0.28x at 0.992x, so
80% less than HPA costs even perfect foresight about 0.995x; picked on the folds at the 1.00x
budget, it leaves 0.07x held out at 1.001x. Issue 17's target (at most 0.20x at no more than
1.00x) leaves a forecast with any error about half a percent of replica-hours over perfect
foresight on these 5-minute traces; the shipped defaults reach the oracle's 0.07x at 1.045x.
The issue's own oracle ran at 0.93x on a minute-level web trace (not in this data), where HPA's
lag costs more and the room is wider."""

RIVAL_SCHEME = "at a rival's replica-hours"
RIVAL_NOTE = ("At equal replica-hours, a forecast that cannot beat the rival adds nothing: per "
              "fold, the rival's knob is picked on the training traces as above, and the "
              "product's knobs as the least unserved demand on the training traces at no more "
              "than the rival's replica-hours there; both are scored on the held-out trace.")

DATA_NOTE = """Data: Google cluster-data 2019 and Azure Public Dataset V2 (aggregated by the
DataCenter-Traces-Datasets project, Zenodo 10.5281/zenodo.14564847, CC-BY-4.0); Azure LLM
inference trace 2023 (Patel et al., "Splitwise", ISCA 2024, CC-BY-4.0); synthetic stress cases
generated in `benchmarks/scaling_data.py` (seed 17). Peers re-implemented from their documentation
(`benchmarks/peers.py` cites each)."""
