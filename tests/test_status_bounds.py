"""Every string the operator writes into status has a bound in the CRDs (the API server refuses
the whole status write when one is longer), and the code that writes it cuts it to that bound."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter

from adaptive_operator.api.base import MESSAGE_LENGTH, STATUS_NAME_LENGTH, Condition
from adaptive_operator.api.coupling import CouplingStatus
from adaptive_operator.api.crd import RESOURCES, object_schema
from adaptive_operator.domain.healing.ladder import Action, HealingPlan
from adaptive_operator.domain.healing.plan import healing_status
from test_crd_bounds import unbounded

HUGE = "x" * 100_000


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_string_in_status_is_bounded(resource: Any) -> None:
    status = object_schema(resource)["properties"]["status"]
    assert [p for p in unbounded(status, "status") if "string without" in p] == []


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models(argument)


def _fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[tuple[str, Any]]:
    """(model.field, field) of every field of `model` and of the models inside it."""
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        for inner in _models(info.annotation):
            yield from _fields(inner, seen)
        yield f"{model.__name__}.{name}", info


def _adapter(info: Any) -> TypeAdapter[Any]:
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[info.annotation, *info.metadata])


def _bound(info: Any) -> int | None:
    schema = _adapter(info).json_schema()
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "string" and "maxLength" in option:
            return int(option["maxLength"])
    return None


# Conditions are written by `merge_conditions`/`replace_conditions`, which cut the message
# (test_crd_bounds); their type and reason are the code's own constants.
STRINGS = [pytest.param(info, bound, id=path) for resource in RESOURCES
           for path, info in _fields(resource.status_model, {Condition})
           if (bound := _bound(info)) is not None]


def test_the_status_strings_are_found() -> None:
    assert len(STRINGS) >= 22


@pytest.mark.parametrize(("info", "bound"), STRINGS)
def test_a_status_model_cuts_an_over_long_string_to_its_bound(info: Any, bound: int) -> None:
    assert len(_adapter(info).validate_python(HUGE)) <= bound


def test_a_long_reason_is_cut_and_says_so() -> None:
    status = CouplingStatus(reason=HUGE, summary=HUGE)
    assert len(status.reason) <= MESSAGE_LENGTH and status.reason.endswith("characters cut)")
    assert len(status.summary) <= MESSAGE_LENGTH


def test_healing_status_cuts_what_it_writes() -> None:
    plan = HealingPlan(Action.NONE, "R" * 500, "m" * 10_000)
    state = healing_status({}, None, plan, [], 0.0)["state"]
    assert len(state["reason"]) <= STATUS_NAME_LENGTH
    assert len(state["message"]) <= MESSAGE_LENGTH
