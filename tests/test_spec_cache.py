"""A service's spec is validated again when its generation moves, and only then."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adaptive_operator.handlers import specs

SPEC = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}]}


def body(generation: int | None, **spec: Any) -> dict[str, Any]:
    meta = {} if generation is None else {"generation": generation}
    return {"metadata": meta, "spec": {**SPEC, **spec}}


def test_the_same_generation_reuses_the_parsed_spec() -> None:
    first, kept = specs.validated(body(3), None)
    again, kept_again = specs.validated(body(3, maxReplicas=9), kept)
    assert again is first and kept_again == kept  # same generation: the same spec


def test_a_new_generation_is_parsed_again() -> None:
    _, kept = specs.validated(body(3), None)
    changed, kept = specs.validated(body(4, maxReplicas=9), kept)
    assert changed.max_replicas == 9 and kept is not None and kept[0] == 4


def test_without_a_generation_every_call_parses() -> None:
    _, kept = specs.validated(body(None), None)
    assert kept is None
    assert specs.validated(body(None, maxReplicas=9), kept)[0].max_replicas == 9


def test_an_invalid_spec_raises_and_keeps_nothing() -> None:
    _, kept = specs.validated(body(3), None)
    with pytest.raises(ValidationError):
        specs.validated(body(4, maxReplicas="many"), kept)
