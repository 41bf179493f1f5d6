"""Bad input, by property: any spec the shipped CRD schema admits is either accepted by the
models or refused by one of the CRD's own CEL rules (so `kubectl apply` already refused it,
with the same words); and every accepted spec goes through the pure decisions of both
resources without an exception.

The specs are generated from crds/*.yaml (tests/crd_strategies.py), not from the models, so a
constraint the models add without a matching schema rule shows up here as a failure.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.healing import PERSISTENCE_RULE, Persistence
from adaptive_operator.api.shard_set import (
    REBALANCE_HYSTERESIS_RULE,
    SPEC_SHARDS_WITHIN_SLOTS_RULE,
    ShardSetSpec,
)
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, Contribution
from adaptive_operator.domain.healing.ladder import (
    LoadSignals,
    Observation,
    decide_healing,
    detector_settings_from_spec,
    policy_from_spec,
)
from adaptive_operator.domain.scaling import algorithm as scaling
from adaptive_operator.domain.scaling.config import spec_from_model
from adaptive_operator.domain.scaling.forecast_memory import advisor_settings
from adaptive_operator.domain.scaling.lookahead import look_ahead
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor
from adaptive_operator.domain.sharding import manifests, resharding
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.rebalancing import RebalancePolicy, rebalance
from adaptive_operator.domain.sharding.slots import initial_assignment
from adaptive_operator.domain.sharding.status import conditions_for
from crd_strategies import admitted, cel_rules, spec_schema

NOW = 1_800_000_000.0
SERVICE_SCHEMA = spec_schema("adaptiveservices")
SHARDSET_SCHEMA = spec_schema("shardsets")
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def refused_only_by_a_cel_rule(err: ValidationError, schema: dict[str, Any]) -> None:
    """A model may refuse only what a CEL rule of the CRD refuses, in the rule's own words."""
    messages = [rule["message"] for rule in cel_rules(schema)]
    for error in err.errors():
        assert any(message in error["msg"] for message in messages), (
            f"the models refuse what the CRD admits: {error['loc']}: {error['msg']}"
        )


def test_every_cross_field_rule_of_the_models_is_in_the_crd() -> None:
    service = [rule["message"] for rule in cel_rules(SERVICE_SCHEMA)]
    shard_set = [rule["message"] for rule in cel_rules(SHARDSET_SCHEMA)]
    assert PERSISTENCE_RULE["message"] in service
    assert "minReplicas must be less than or equal to maxReplicas" in service
    assert SPEC_SHARDS_WITHIN_SLOTS_RULE["message"] in shard_set
    assert REBALANCE_HYSTERESIS_RULE["message"] in shard_set


@pytest.mark.parametrize(
    ("model", "raw", "field", "words"),
    [
        pytest.param(
            AdaptiveServiceSpec,
            {
                "scaleTargetRef": {"name": "w"},
                "maxReplicas": 1,
                "minReplicas": 3,
                "metrics": [{"name": "m", "query": "q", "targetPerReplica": 1}],
            },
            (),
            "minReplicas must be less than or equal to maxReplicas",
            id="min-above-max",
        ),
        pytest.param(
            AdaptiveServiceSpec,
            {
                "scaleTargetRef": {"name": "w"},
                "maxReplicas": 2,
                "metrics": [{"name": "m", "query": "q", "targetPerReplica": 0}],
            },
            ("metrics", 0, "targetPerReplica"),
            "greater than 0",
            id="zero-target",
        ),
        pytest.param(
            AdaptiveServiceSpec,
            {
                "scaleTargetRef": {"name": "w"},
                "maxReplicas": 2,
                "metrics": [{"name": "Bad Name", "query": "q", "targetPerReplica": 1}],
            },
            ("metrics", 0, "name"),
            "should match pattern",
            id="metric-name-pattern",
        ),
        pytest.param(
            Persistence,
            {"k": 3, "n": 2},
            (),
            PERSISTENCE_RULE["message"],
            id="persistence-k-above-n",
        ),
        pytest.param(
            ShardSetSpec,
            {
                "shards": 5,
                "slots": 4,
                "template": {"template": {}},
                "migration": {"jobTemplate": {}},
            },
            (),
            SPEC_SHARDS_WITHIN_SLOTS_RULE["message"],
            id="more-shards-than-slots",
        ),
    ],
)
def test_a_refusal_names_the_field_and_the_rule(
    model: Any, raw: dict[str, Any], field: tuple[Any, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(raw)
    error = caught.value.errors()[0]
    assert error["loc"] == field and words in error["msg"]


# --- AdaptiveService ------------------------------------------------------------------------


VERDICTS = st.builds(
    AnomalyVerdict,
    st.floats(0, 1),
    st.booleans(),
    st.lists(
        st.builds(
            Contribution,
            st.sampled_from(["latency", "cpu"]),
            st.floats(allow_nan=False),
            st.floats(allow_nan=False),
            st.floats(allow_nan=False),
        ),
        max_size=2,
    ).map(tuple),
)
SIGNALS = st.none() | st.builds(
    LoadSignals, st.floats(-1, 10), st.floats(-1, 10), st.floats(-1, 10)
)


def _present(name: str) -> st.SearchStrategy[Any]:
    """A block the spec may leave out (healing, predictive), always there: each half of the
    examples would otherwise leave it out or null."""
    block = {k: v for k, v in SERVICE_SCHEMA["properties"][name].items() if k != "nullable"}
    return admitted(block)


SERVICES = st.builds(
    lambda raw, healing, predictive, keep: {
        **raw,
        **({"healing": healing, "predictive": predictive} if keep else {}),
    },
    admitted(SERVICE_SCHEMA),
    _present("healing"),
    _present("predictive"),
    st.booleans(),
)


@PROPERTY
@given(
    SERVICES,
    st.integers(0, 60),
    st.lists(st.floats(0, 1e6), max_size=3),
    st.none() | VERDICTS,
    SIGNALS,
)
def test_any_admitted_adaptive_service_is_handled(
    raw: dict[str, Any],
    current: int,
    values: list[float],
    verdict: AnomalyVerdict | None,
    signals: LoadSignals | None,
) -> None:
    try:
        spec = AdaptiveServiceSpec.model_validate(raw)
    except ValidationError as err:
        refused_only_by_a_cel_rule(err, SERVICE_SCHEMA)
        return
    readings = tuple(
        scaling.MetricReading(m.name, v, m.target_per_replica)
        for m, v in zip(spec.metrics, values + [math.nan] * 3, strict=False)
    )
    snapshot = scaling.ScalingSnapshot(current, current, 0, readings)
    decision = scaling.decide(spec_from_model(spec), snapshot, scaling.ScalingHistory((), ()), NOW)
    assert (
        decision.desired_replicas == 0
        if current == 0
        else (spec.min_replicas <= decision.desired_replicas <= spec.max_replicas)
    )
    if spec.healing is not None:
        detector_settings_from_spec(spec.healing)
        observation = Observation(
            verdict, NOW - 10, load=signals, replicas=current, max_replicas=spec.max_replicas
        )
        plan = decide_healing(policy_from_spec(spec.healing), observation, [], NOW)
        assert plan.message
    if spec.predictive is not None:
        period = float(spec.sync_period_seconds)
        ahead = look_ahead(spec.predictive.look_ahead_seconds, (), period)
        advisor = PredictiveAdvisor(advisor_settings(spec.predictive, period))
        floor = advisor.advise(
            [1.0, 2.0, None, 3.0], period, ahead.seconds, spec.metrics[0].target_per_replica
        )
        assert floor is None or floor >= 0


# --- ShardSet -------------------------------------------------------------------------------


SMALL_SHARDSET = admitted(SHARDSET_SCHEMA).filter(
    lambda raw: raw.get("slots", 16384) <= 4096
)  # the default; larger only slows the property


@PROPERTY
@given(SMALL_SHARDSET, st.integers(1, 6), st.lists(st.floats(0, 1e6), min_size=6, max_size=6))
def test_any_admitted_shard_set_is_handled(
    raw: dict[str, Any], before: int, loads: list[float]
) -> None:
    try:
        spec = ShardSetSpec.model_validate(raw)
    except ValidationError as err:
        refused_only_by_a_cel_rule(err, SHARDSET_SCHEMA)
        return
    before = min(before, spec.slots)
    routing = RoutingState(3, initial_assignment(before, spec.slots))
    snapshot = resharding.ShardSetSnapshot(
        shards=spec.shards,
        slots=spec.slots,
        concurrency=spec.migration.concurrency,
        backoff_limit=spec.migration.backoff_limit,
        backoff_seconds=spec.migration.backoff_seconds,
        routing=routing,
        existing_shards=frozenset(range(before)),
        ready_shards=frozenset(range(before)),
    )
    decision = resharding.decide(snapshot, NOW)
    assert conditions_for(snapshot, decision)
    template = spec.template.model_dump(by_alias=True)
    for shard in decision.create_shards:
        assert manifests.stateful_set("db", shard, template)["kind"] == "StatefulSet"
    for move, attempt in decision.start_jobs:
        job = manifests.migration_job(
            "db", "ns", spec.slots, spec.migration.job_template, move, attempt
        )
        assert job["kind"] == "Job"
    if spec.rebalance is not None and decision.settled:
        policy = RebalancePolicy(
            spec.rebalance.imbalance_threshold,
            spec.rebalance.hysteresis,
            spec.rebalance.max_moves_per_period,
        )
        rebalance(
            decision.routing.owners,
            loads[: spec.shards] + [0.0] * max(0, spec.shards - 6),
            policy,
            False,
        )
