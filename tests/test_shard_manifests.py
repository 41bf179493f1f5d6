"""Manifests of the objects a ShardSet owns, and migration Jobs read back."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.domain.sharding import manifests as m
from adaptive_operator.domain.sharding.resharding import JobObservation
from adaptive_operator.domain.sharding.slots import Move

TEMPLATE: dict[str, Any] = {
    "replicas": 2,
    "template": {"metadata": {"labels": {"app": "cache"}},
                 "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}},
    "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
}
JOB_TEMPLATE: dict[str, Any] = {"template": {"spec": {"containers": [
    {"name": "mover", "image": "mover:1", "env": [{"name": "MODE", "value": "copy"}]}]}}}
MOVE = Move(100, 200, 0, 3)


def test_stateful_set_selects_its_own_pods() -> None:
    sts = m.stateful_set("cache", 2, TEMPLATE)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "cache", m.SHARDSET_LABEL: "cache", m.SHARD_LABEL: "2"}
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert sts["spec"]["serviceName"] == "cache-2" == sts["metadata"]["name"]
    assert sts["spec"]["replicas"] == 2
    assert TEMPLATE["template"]["metadata"]["labels"] == {"app": "cache"}  # not mutated


def test_headless_service_matches_the_shard() -> None:
    service = m.headless_service("cache", 2)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == m.shard_labels("cache", 2)
    assert m.shard_address("cache", "prod", 2) == "cache-2.prod.svc"


def check_env_carries_the_move(container: dict[str, Any]) -> None:
    """The template's own variable kept, and MOVE's slots, shards and target address added."""
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODE"] == "copy"
    assert (env["SHARD_RANGE_START"], env["SHARD_RANGE_END"], env["SHARD_RANGE_LAST"]) == (
        "100", "200", "199")
    assert (env["SOURCE"], env["TARGET"]) == ("0", "3")
    assert env["TARGET_ADDRESS"] == "cache-3.prod.svc"


def test_migration_job_carries_the_move_in_env_and_labels() -> None:
    job = m.migration_job("cache", "prod", 16384, JOB_TEMPLATE, MOVE, 2)
    check_env_carries_the_move(job["spec"]["template"]["spec"]["containers"][0])
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["name"] == m.job_name("cache", MOVE, 2)
    template_env = JOB_TEMPLATE["template"]["spec"]["containers"][0]["env"]
    assert template_env == [{"name": "MODE", "value": "copy"}]  # the template is not mutated


def test_job_names_fit_in_a_label() -> None:
    name = m.job_name("x" * 80, Move(16000, 16384, 12, 13), 10)
    assert len(name) <= 63
    assert name.endswith("-m16000-16384-12-13-a10")


def finished(kind: str | None) -> dict[str, Any]:
    job = m.migration_job("cache", "prod", 16384, JOB_TEMPLATE, MOVE, 1)
    if kind:
        job["status"] = {"conditions": [
            {"type": "Suspended", "status": "False"},
            {"type": kind, "status": "True", "lastTransitionTime": "T"}]}
    return job


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(None, JobObservation(MOVE, 1, "running", None), id="running"),
        pytest.param("Complete", JobObservation(MOVE, 1, "succeeded", 42.0), id="complete"),
        pytest.param("Failed", JobObservation(MOVE, 1, "failed", 42.0), id="failed"),
    ],
)
def test_job_observation(kind: str | None, expected: JobObservation) -> None:
    assert m.job_observation(finished(kind), lambda stamp: 42.0) == expected


def test_foreign_jobs_are_ignored() -> None:
    assert m.job_observation({"metadata": {"labels": {"app": "x"}}}, float) is None
    assert m.shard_of({"metadata": {"labels": {m.SHARD_LABEL: "x"}}}) is None
    assert m.shard_of(m.stateful_set("cache", 4, TEMPLATE)) == 4


@pytest.mark.parametrize(
    ("status", "generation", "ready"),
    [
        pytest.param({"readyReplicas": 2, "observedGeneration": 1}, 1, True, id="all-ready"),
        pytest.param({"readyReplicas": 1, "observedGeneration": 1}, 1, False, id="one-missing"),
        pytest.param({"readyReplicas": 2, "observedGeneration": 1}, 2, False, id="stale-status"),
        pytest.param({}, 1, False, id="no-status-yet"),
    ],
)
def test_is_ready(status: dict[str, int], generation: int, ready: bool) -> None:
    sts = m.stateful_set("cache", 0, TEMPLATE)
    sts["metadata"]["generation"] = generation
    sts["status"] = status
    assert m.is_ready(sts) is ready


def test_routing_config_map_is_labelled() -> None:
    cm = m.routing_config_map("cache", {"epoch": "1"})
    assert cm["metadata"]["name"] == "cache-routing"
    assert cm["data"] == {"epoch": "1"}


def test_template_update_escapes_the_annotation_key() -> None:
    ops = m.template_update("cache", 1, TEMPLATE)
    paths = [op["path"] for op in ops]
    assert paths == ["/spec/replicas", "/spec/template",
                     "/metadata/annotations/adaptive.dev~1template-hash"]
    sts = m.stateful_set("cache", 1, TEMPLATE)
    assert not m.is_out_of_date(sts, TEMPLATE)
    assert m.is_out_of_date(sts, {**TEMPLATE, "replicas": 5})
