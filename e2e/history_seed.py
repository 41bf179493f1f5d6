"""Minutes of past samples written into the cluster's Prometheus before a test's services start.

What backfills from Prometheus (the anomaly detector's history, the forecaster's) then starts
from a service that has been running a while, as most have when their AdaptiveService is
applied, instead of the suite waiting minutes for the rows to be scraped. The operator reads
these rows through its own backfill, the path a user's history takes.

The samples go through Prometheus' remote-write receiver (e2e/remote_write.py), the same way on
the local cluster and on kind. A seeded series carries every label the scrape of its exporter
gives (job and instance among them, read from the exporter's own `up` series), so the live
samples continue the same series, and no query sees a seeded one linger beside it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from remote_write import push

from support import prom_query, wait_until

SCRAPED_TIMEOUT = 120  # seconds: an exporter pod is discovered, then scraped every 2 s


@dataclass(frozen=True)
class Series:
    metric: str
    labels: Mapping[str, str]
    values: Sequence[float]  # one per step, oldest first


def scraped_labels(prometheus_url: str, exporter: str) -> dict[str, str]:
    """The labels Prometheus gives the samples of the exporter named `exporter` (its target's:
    job, instance, and where it runs), once it has scraped it."""
    found = wait_until(lambda: prom_query(prometheus_url, f'up{{exporter="{exporter}"}} == 1'),
                       SCRAPED_TIMEOUT, f"Prometheus to scrape the exporter {exporter}")
    assert len(found) == 1, f"more than one target of the exporter {exporter}: {found}"
    labels = found[0]["metric"]
    assert isinstance(labels, dict)
    return {str(k): str(v) for k, v in labels.items() if k != "__name__"}  # `up`'s own


def seed(prometheus_url: str, series: Sequence[Series], step: float,
         end: float | None = None) -> None:
    """Write the series (each one's last sample one step before `end`, by default now) and check
    that Prometheus serves all of the first one's samples."""
    assert series, "nothing to seed"
    end = time.time() if end is None else end
    push(prometheus_url, [
        ({**one.labels, "__name__": one.metric},
         [(end - step * (len(one.values) - i), value) for i, value in enumerate(one.values)])
        for one in series])
    first = series[0]
    matcher = ",".join(f'{k}="{v}"' for k, v in sorted(first.labels.items()))
    # Counted at `end` over the seeded span only: live samples after it do not count.
    span = step * len(first.values)
    query = f"count_over_time({first.metric}{{{matcher}}}[{span:.0f}s] @ {end:.3f})"

    def served() -> bool:
        found = prom_query(prometheus_url, query)
        # The window's oldest edge may be open: the first sample need not be counted.
        return bool(found) and float(found[0]["value"][1]) >= len(first.values) - 1  # type: ignore[index]

    wait_until(served, 10, "Prometheus to serve the seeded history", interval=0.5)
