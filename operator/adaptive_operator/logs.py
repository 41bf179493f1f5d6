"""Structured logs: one JSON event per line on stderr, through structlog.

The operator's own events are rendered and written by structlog directly (about 20 us a line
here, against 110 us through the standard library's logging; 1,000 services log two decisions
each per period). Other libraries' records (kopf's own) and Python's warnings go through
logging, rendered the same.
"""

from __future__ import annotations

import contextvars
import logging
import sys

import structlog


def configure(level: str = "info", json_output: bool = True) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ExpectedCancellation())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Python's warnings (numpy's overflow on a tenant's huge values, statsmodels' convergence)
    # as log events too: printed as they come, their two plain lines broke the JSON stream.
    logging.captureWarnings(True)


class ExpectedCancellation(logging.Filter):
    """kopf warns "<daemon> is cancelled. Will escalate." for every daemon it cancels, and it
    cancels ours by design on every stop and deletion (they wait with a plain sleep:
    handlers/runtime.pause): two warnings per service at each restart of the operator, a
    thousand services' worth of false alarms. They are logged at info instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.levelno == logging.WARNING and record.name.startswith("kopf")
                and record.getMessage().endswith(" is cancelled. Will escalate.")):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger().isEnabledFor(logging.INFO)


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


OBJECT_KEYS = ("namespace", "name")


def about(namespace: str, name: str) -> None:
    """Every event logged from here on in this task names the object, and so do those of the
    tasks and worker-thread calls it starts (a context variable: they take a copy)."""
    structlog.contextvars.bind_contextvars(namespace=namespace, name=name)


def shared() -> contextvars.Context:
    """A copy of the current context naming no object: for a task that serves many objects (a
    query batched for several services), whichever object's call started it."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.unbind_contextvars, *OBJECT_KEYS)
    return context


def error_text(err: BaseException) -> str:
    """An error for a log line: its type and its message (for urllib3's MaxRetryError, the
    cause: a refused connection or a read timeout), at most 300 characters."""
    return f"{type(err).__name__}: {err}"[:300]
