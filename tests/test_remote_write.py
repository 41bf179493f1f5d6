"""What the e2e tests write into Prometheus' remote-write receiver (e2e/remote_write.py): a
process' /metrics as a scrape stores them. The writes themselves are tested against the built
Prometheus (tests/test_cluster_prometheus.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cramjam

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import remote_write  # an e2e helper module (e2e/ is a script folder, not a package)

TEXT = """# HELP adaptive_desired_replicas Replicas the operator wants.
# TYPE adaptive_desired_replicas gauge
adaptive_desired_replicas{namespace="shop",name="web"} 3.0
# HELP adaptive_decisions_total Decisions.
# TYPE adaptive_decisions_total counter
adaptive_decisions_total{namespace="shop",name="web",reason="load",job="mine"} 7.0
"""


def test_a_process_metrics_are_stored_as_a_scrape_would_store_them() -> None:
    target = {"job": "adaptive-operator", "instance": "127.0.0.1:9"}
    assert remote_write.scraped(TEXT, target, 100.0) == [
        ({"namespace": "shop", "name": "web", **target, "__name__": "adaptive_desired_replicas"},
         [(100.0, 3.0)]),
        # The target's own labels win over the process' (a scrape without honor_labels).
        ({"namespace": "shop", "name": "web", "reason": "load", **target,
          "__name__": "adaptive_decisions_total"}, [(100.0, 7.0)]),
    ]


def test_the_request_is_a_snappy_compressed_write_request() -> None:
    body = remote_write.encode([({"b": "2", "__name__": "m", "a": "1"}, [(1.5, 4.0)])])
    request = remote_write.write_request_class().FromString(
        bytes(cramjam.snappy.decompress_raw(body)))
    (series,) = request.timeseries
    # Sorted by name, as the protocol asks; timestamps in milliseconds.
    assert [(label.name, label.value) for label in series.labels] == [
        ("__name__", "m"), ("a", "1"), ("b", "2")]
    assert [(sample.timestamp, sample.value) for sample in series.samples] == [(1500, 4.0)]
