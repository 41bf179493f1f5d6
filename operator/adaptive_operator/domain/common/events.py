"""A Kubernetes Event as a plan asks for it (the handler posts it), and its manifest."""

from __future__ import annotations

import hashlib
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
    # Names the Event after the one fact it tells (a replica write, a healing action), so that
    # telling it again (a new leader finishing what a frozen or killed one began) is refused by
    # the API server (409) instead of said twice. None: every post is a new Event.
    key: str | None = None


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
        "metadata": {"namespace": namespace, **_naming(ref, event.key)},
        "action": "Action?",  # kopf's placeholder
        "type": event.type, "reason": event.reason, "message": cut_message(event.message),
        "reportingComponent": REPORTER, "reportingInstance": REPORTER_INSTANCE,
        "source": {"component": REPORTER},  # the "From" column of `kubectl describe`
        "involvedObject": ref,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": stamp,
    }


def _naming(ref: Mapping[str, str], key: str | None) -> dict[str, str]:
    """A fixed name for a keyed Event (the same object and key: the same name), else kopf's."""
    if key is None:
        return {"generateName": NAME_PREFIX}
    fact = "/".join((ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""), key))
    return {"name": NAME_PREFIX + hashlib.sha256(fact.encode()).hexdigest()[:32]}
