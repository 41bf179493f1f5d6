"""Minutes of past samples written straight into the local cluster's Prometheus.

What backfills from Prometheus (the anomaly detector's history, the forecaster's) then starts
from a service that has been running a while, as most have when their AdaptiveService is
applied, instead of the suite waiting minutes for the rows to be scraped. The operator reads
these rows through its own backfill, the path a user's history takes.

promtool writes the samples as TSDB blocks into Prometheus' data folder; Prometheus loads new
blocks within a minute, and `seed` waits until it serves them. A seeded series carries every label
the scrape gives (job and instance among them): the live samples then continue the same series,
and no query sees the seeded one linger beside it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster_build import tool

from support import prom_query, wait_until

LOAD_TIMEOUT = 150  # seconds: Prometheus looks for new blocks once a minute


@dataclass(frozen=True)
class Series:
    metric: str
    labels: Mapping[str, str]
    values: Sequence[float]  # one per step, oldest first


def openmetrics(series: Sequence[Series], end: float, step: float) -> str:
    """The samples as OpenMetrics text, each series' last sample one step before `end`."""
    lines: list[str] = []
    for metric in dict.fromkeys(s.metric for s in series):
        lines.append(f"# TYPE {metric} gauge")
        for one in (s for s in series if s.metric == metric):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(one.labels.items()))
            first = end - step * len(one.values)
            lines += [f"{metric}{{{labels}}} {value:.9g} {first + i * step:.3f}"
                      for i, value in enumerate(one.values)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def exporter_labels(name: str, port: int, **labels: str) -> dict[str, str]:
    """The labels the cluster's `exporters` job gives a sample of the Exporter `name`."""
    return {"job": "exporters", "instance": f"127.0.0.1:{port}", "exporter": name, **labels}


def seed(targets_dir: Path, prometheus_url: str, series: Sequence[Series], step: float,
         end: float | None = None) -> None:
    """Write the series (ending one step before `end`, by default now) and wait until
    Prometheus serves all of the first one's samples."""
    # The cluster's own build: its blocks are in the format this Prometheus reads.
    promtool = tool("promtool")
    assert promtool.exists(), "promtool is built by `e2e/cluster build` (e2e/build/prometheus)"
    assert series, "nothing to seed"
    end = time.time() if end is None else end
    data = targets_dir.parent / "data"  # e2e/cluster keeps targets/ beside the TSDB
    with tempfile.TemporaryDirectory() as tmp:
        source, blocks = Path(tmp) / "history.om", Path(tmp) / "blocks"
        source.write_text(openmetrics(series, end, step))
        subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source),
                        str(blocks)], check=True, capture_output=True, timeout=120)
        for block in blocks.iterdir():
            shutil.move(str(block), str(data / block.name))
    first = series[0]
    matcher = ",".join(f'{k}="{v}"' for k, v in sorted(first.labels.items()))
    # Counted at `end` over the seeded span only: live samples after it do not count.
    span = step * len(first.values)
    query = f"count_over_time({first.metric}{{{matcher}}}[{span:.0f}s] @ {end:.3f})"

    def served() -> bool:
        found = prom_query(prometheus_url, query)
        # The window's oldest edge may be open: the first sample need not be counted.
        return bool(found) and float(found[0]["value"][1]) >= len(first.values) - 1  # type: ignore[index]

    wait_until(served, LOAD_TIMEOUT, "Prometheus to serve the seeded history", interval=2.0)
