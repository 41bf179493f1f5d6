"""What a service's daemons log, their background warm-ups and fits included, names the
service; a query batched for several services names none of them."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import structlog

from adaptive_operator import logs
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.handlers.warmup import WarmUps

log = logs.get(__name__)


async def test_a_warm_up_started_by_a_service_logs_its_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def daemon() -> None:
        logs.about("shop", "web")

        async def backfill() -> None:
            log.info("history backfilled")

        await WarmUps().start(backfill)

    await asyncio.create_task(daemon())
    line = capsys.readouterr().out
    assert "history backfilled" in line and "namespace=shop" in line and "name=web" in line


async def test_the_context_shared_by_many_names_no_object() -> None:
    async def daemon() -> dict[str, Any]:
        logs.about("shop", "web")
        seen = logs.shared().run(structlog.contextvars.get_contextvars)
        assert structlog.contextvars.get_contextvars() == {"namespace": "shop", "name": "web"}
        return seen

    assert await asyncio.create_task(daemon()) == {}


def _bound_then(read: Any) -> Any:
    async def daemon() -> Any:
        logs.about("shop", "web")
        return await read()

    return daemon


async def test_a_batched_range_query_runs_without_the_first_callers_name() -> None:
    seen: list[dict[str, Any]] = []

    def prometheus(url: object, query: str, start: float, end: float, step: float) -> Any:
        seen.append(structlog.contextvars.get_contextvars())
        return [{"metric": {}, "values": [[start, "1"]]}]

    batcher = RangeBatcher(prometheus)
    await asyncio.create_task(_bound_then(
        lambda: batcher.series("http://p", "sum(x)", 1000.0, 1000.0, 15.0))())
    assert seen == [{}]


async def test_a_batched_instant_query_runs_without_the_first_callers_name() -> None:
    seen: list[dict[str, Any]] = []

    def prometheus(url: object, query: str, **_: Any) -> Any:
        seen.append(structlog.contextvars.get_contextvars())
        return [{"metric": {}, "value": [1000.0, "1"]}]

    batcher = QueryBatcher(prometheus)
    await asyncio.create_task(_bound_then(lambda: batcher.total("http://p", "sum(x)", 5.0))())
    assert seen == [{}]


def test_pythons_warnings_are_json_log_events_too() -> None:
    """A numpy or statsmodels warning printed as it comes is two plain lines in the JSON
    stream (a log shipper parsing JSON drops or mangles them)."""
    program = ("import warnings\nfrom adaptive_operator import logs\nlogs.configure()\n"
               "warnings.warn('overflow encountered in subtract', RuntimeWarning)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = done.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert len(events) == 1 and events[0]["level"] == "warning"
    assert "RuntimeWarning: overflow encountered in subtract" in events[0]["event"]


@pytest.mark.parametrize(("level", "shown"), [("info", "info"), ("warning", None)])
def test_kopfs_warning_on_cancelling_a_daemon_is_info(level: str, shown: str | None) -> None:
    """kopf cancels every daemon of ours on a stop, by design: no warning per service."""
    program = (
        "import logging\nfrom adaptive_operator import logs\n"
        f"logs.configure({level!r})\n"
        "kopf = logging.getLogger('kopf.objects')\n"
        "kopf.warning(\"Daemon 'scaling_daemon' is cancelled. Will escalate.\")\n"
        "kopf.warning('Patching failed with inconsistencies')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    levels = {json.loads(line)["event"]: json.loads(line)["level"]
              for line in done.stderr.splitlines()}
    assert levels.get("Daemon 'scaling_daemon' is cancelled. Will escalate.") == shown
    assert levels["Patching failed with inconsistencies"] == "warning"  # others stay warnings


def test_kopf_still_words_its_cancellation_as_the_filter_expects() -> None:
    """`logs.ExpectedCancellation` matches kopf's text: a kopf release that rewords it would
    bring a warning per daemon back at every stop, which the test above cannot see."""
    from kopf._core.actions import execution

    source = inspect.getsource(execution)
    assert 'logger.warning(f"{handler} is cancelled. Will escalate.")' in source
