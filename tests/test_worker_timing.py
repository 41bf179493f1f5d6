"""The operator's worker threads say how long calls waited for a thread and how long they ran."""

from __future__ import annotations

import pytest

from adaptive_operator.adapters.telemetry import WORKER_QUEUE_SECONDS, WORKER_RUN_SECONDS
from adaptive_operator.adapters.workers import FairExecutor


def observed(histogram: object) -> float:
    for metric in histogram.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


def test_every_call_is_timed_even_one_that_fails() -> None:
    queued, ran = observed(WORKER_QUEUE_SECONDS), observed(WORKER_RUN_SECONDS)
    with FairExecutor(1, "timed") as pool:
        assert pool.submit(pow, 2, exp=5).result() == 32
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result()
    assert observed(WORKER_QUEUE_SECONDS) == queued + 2
    assert observed(WORKER_RUN_SECONDS) == ran + 2
