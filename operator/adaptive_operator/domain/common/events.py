"""A Kubernetes Event as a plan asks for it (the handler posts it), and its manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# As kopf posted them before the operator posted its own (so `kubectl describe` and anything
# reading the Events see no change): its defaults for the reporter and the name prefix.
REPORTER = "kopf"
REPORTER_INSTANCE = "dev"
NAME_PREFIX = "kopf-event-"
MESSAGE_LENGTH = 1024  # kopf's cut: longer messages keep their start and end
CUT = "..."


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


def involved_object(body: Mapping[str, Any]) -> dict[str, str]:
    """The reference to the object an Event is about (the fields it has)."""
    metadata = body.get("metadata") or {}
    ref = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
           "name": metadata.get("name"), "uid": metadata.get("uid"),
           "namespace": metadata.get("namespace")}
    return {key: str(value) for key, value in ref.items() if value}


def cut_message(message: str) -> str:
    if len(message) <= MESSAGE_LENGTH:
        return message
    head = MESSAGE_LENGTH // 2 - len(CUT) // 2
    tail = MESSAGE_LENGTH - head - len(CUT)
    return f"{message[:head]}{CUT}{message[-tail:]}"


def event_manifest(body: Mapping[str, Any], event: Event, now: float) -> dict[str, Any]:
    """A core/v1 Event about `body` (an object of ours), the same as kopf's `kopf.event`."""
    ref = involved_object(body)
    ref["namespace"] = namespace = ref.get("namespace") or "default"
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat()
    return {
        "metadata": {"namespace": namespace, "generateName": NAME_PREFIX},
        "action": "Action?",  # kopf's placeholder
        "type": event.type, "reason": event.reason, "message": cut_message(event.message),
        "reportingComponent": REPORTER, "reportingInstance": REPORTER_INSTANCE,
        "source": {"component": REPORTER},  # the "From" column of `kubectl describe`
        "involvedObject": ref,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": stamp,
    }
