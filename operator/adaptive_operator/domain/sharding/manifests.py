"""The objects a ShardSet owns, as plain manifests, and reading Jobs back into observations.

Per shard ``i`` of ShardSet ``name``: a StatefulSet and a headless Service both called
``name-i`` (so the shard's address is ``name-i.<namespace>.svc``); one ConfigMap ``name-routing``
holds the routing table; one Job per run of a migration. Everything is found again by labels,
so the operator can restart at any point.

Migration Jobs get, in every container: ``SHARD_RANGE_START`` and ``SHARD_RANGE_END`` (half-open:
slots ``START <= slot < END``), ``SHARD_RANGE_LAST`` (= END - 1), ``SOURCE`` and ``TARGET`` (shard
numbers), ``SOURCE_ADDRESS``, ``TARGET_ADDRESS``, ``SHARD_SLOTS`` and ``MIGRATION_ATTEMPT``. The
Job's own ``backoffLimit`` is 0: retries, with backoff, are the operator's, so that it sees and
records every failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from adaptive_operator.domain.sharding.resharding import JobObservation, JobState
from adaptive_operator.domain.sharding.slots import Move

SHARDSET_LABEL = "adaptive.dev/shardset"
SHARD_LABEL = "adaptive.dev/shard"
ROLE_LABEL = "adaptive.dev/role"
MOVE_LABELS = ("adaptive.dev/move-start", "adaptive.dev/move-end", "adaptive.dev/move-from",
               "adaptive.dev/move-to")
ATTEMPT_LABEL = "adaptive.dev/attempt"
TEMPLATE_HASH_ANNOTATION = "adaptive.dev/template-hash"


def shard_name(name: str, shard: int) -> str:
    return f"{name}-{shard}"


def shard_address(name: str, namespace: str, shard: int) -> str:
    return f"{shard_name(name, shard)}.{namespace}.svc"


def routing_config_map_name(name: str) -> str:
    return f"{name}-routing"


def job_name(name: str, move: Move, attempt: int) -> str:
    """Job names end up in a pod label (job-name), so they stay within 63 characters; a name cut
    to fit carries a digest of the whole ShardSet name, so two long names sharing a prefix never
    give two ShardSets' Jobs the same name."""
    suffix = f"-m{move.start}-{move.end}-{move.source}-{move.target}-a{attempt}"
    if len(name) + len(suffix) <= 63:
        return name + suffix
    digest = "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: 63 - len(suffix) - len(digest)].rstrip("-") + digest + suffix


def shard_labels(name: str, shard: int) -> dict[str, str]:
    return {SHARDSET_LABEL: name, SHARD_LABEL: str(shard)}


def template_hash(template: Mapping[str, Any]) -> str:
    """A digest of the shard template: a StatefulSet whose annotation differs is out of date."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stateful_set(name: str, shard: int, template: Mapping[str, Any]) -> dict[str, Any]:
    """One shard's StatefulSet from the ShardSet's ``spec.template`` (camelCase)."""
    labels = shard_labels(name, shard)
    pod_template = copy.deepcopy(dict(template.get("template", {})))
    metadata = pod_template.setdefault("metadata", {})
    metadata["labels"] = {**metadata.get("labels", {}), **labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": shard_name(name, shard),
            "labels": labels,
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(template)},
        },
        "spec": {
            "replicas": template.get("replicas", 1),
            "serviceName": shard_name(name, shard),
            "selector": {"matchLabels": labels},
            "template": pod_template,
            "volumeClaimTemplates": copy.deepcopy(list(template.get("volumeClaimTemplates", []))),
        },
    }


def template_update(name: str, shard: int, template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch bringing a shard's StatefulSet to the template (volume claims are immutable)."""
    desired = stateful_set(name, shard, template)
    return [
        {"op": "replace", "path": "/spec/replicas", "value": desired["spec"]["replicas"]},
        {"op": "replace", "path": "/spec/template", "value": desired["spec"]["template"]},
        {"op": "add", "path": "/metadata/annotations/" + _pointer(TEMPLATE_HASH_ANNOTATION),
         "value": desired["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]},
    ]


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # JSON pointer escaping (RFC 6901)


def is_out_of_date(stateful_set: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    annotations = stateful_set.get("metadata", {}).get("annotations") or {}
    return annotations.get(TEMPLATE_HASH_ANNOTATION) != template_hash(template)


def headless_service(name: str, shard: int) -> dict[str, Any]:
    labels = shard_labels(name, shard)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": shard_name(name, shard), "labels": labels},
        "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True},
    }


def routing_config_map(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": routing_config_map_name(name),
            "labels": {SHARDSET_LABEL: name, ROLE_LABEL: "routing"},
        },
        "data": dict(data),
    }


def migration_job(
    name: str,
    namespace: str,
    slots: int,
    job_template: Mapping[str, Any],
    move: Move,
    attempt: int,
) -> dict[str, Any]:
    """One run of one move, from the ShardSet's ``spec.migration.jobTemplate`` (a Job spec)."""
    labels = {
        SHARDSET_LABEL: name,
        ROLE_LABEL: "migration",
        ATTEMPT_LABEL: str(attempt),
        **dict(zip(MOVE_LABELS, map(str, (move.start, move.end, move.source, move.target)),
                   strict=True)),
    }
    spec = copy.deepcopy(dict(job_template))
    spec["backoffLimit"] = 0
    pod_spec = spec.setdefault("template", {}).setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    env = _migration_env(name, namespace, slots, move, attempt)
    for container in pod_spec.get("containers", []):
        container["env"] = [*container.get("env", []), *env]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(name, move, attempt), "labels": labels},
        "spec": spec,
    }


def _migration_env(
    name: str, namespace: str, slots: int, move: Move, attempt: int
) -> list[dict[str, str]]:
    values = {
        "SHARD_RANGE_START": move.start,
        "SHARD_RANGE_END": move.end,
        "SHARD_RANGE_LAST": move.end - 1,
        "SOURCE": move.source,
        "TARGET": move.target,
        "SOURCE_ADDRESS": shard_address(name, namespace, move.source),
        "TARGET_ADDRESS": shard_address(name, namespace, move.target),
        "SHARD_SLOTS": slots,
        "MIGRATION_ATTEMPT": attempt,
    }
    return [{"name": key, "value": str(value)} for key, value in values.items()]


def job_observation(job: Mapping[str, Any], parse_time: Any) -> JobObservation | None:
    """A migration Job read back (a manifest dict), or None when it is not one of ours.

    ``parse_time`` turns a Kubernetes timestamp into seconds; it is a parameter so that this
    module stays free of clock and date handling.
    """
    labels = job.get("metadata", {}).get("labels") or {}
    try:
        start, end, source, target = (int(labels[key]) for key in MOVE_LABELS)
        attempt = int(labels[ATTEMPT_LABEL])
    except (KeyError, ValueError):
        return None
    state, since = _job_state(job.get("status") or {})
    finished = parse_time(since) if since else None
    return JobObservation(Move(start, end, source, target), attempt, state, finished)


def _job_state(status: Mapping[str, Any]) -> tuple[JobState, str | None]:
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded", condition.get("lastTransitionTime")
        if condition.get("type") == "Failed":
            return "failed", condition.get("lastTransitionTime")
    return "running", None


def shard_of(obj: Mapping[str, Any]) -> int | None:
    """The shard number a StatefulSet or Service of ours belongs to."""
    labels = obj.get("metadata", {}).get("labels") or {}
    try:
        return int(labels[SHARD_LABEL])
    except (KeyError, ValueError):
        return None


def is_ready(stateful_set: Mapping[str, Any]) -> bool:
    spec = stateful_set.get("spec") or {}
    status = stateful_set.get("status") or {}
    generation = stateful_set.get("metadata", {}).get("generation", 0)
    caught_up = status.get("observedGeneration", 0) >= generation
    return bool(caught_up and status.get("readyReplicas", 0) >= spec.get("replicas", 1))
