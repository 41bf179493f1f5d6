"""Shared pieces of the resource models: camelCase aliases and Kubernetes conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "adaptive.dev"
VERSION = "v1alpha1"

# Bounds on what a tenant may write (one object must not hurt the others): the CRDs carry them,
# the models enforce them, and the commands that share a contract with a field use the same.
MAX_REPLICAS = 100_000
MAX_LOOK_AHEAD_SECONDS = 86_400


class KubeModel(BaseModel):
    """camelCase in YAML, snake_case in Python; unknown fields refused (the API server prunes)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """A condition as the Kubernetes API conventions describe it."""

    type: str = Field(min_length=1, description="Condition type, e.g. Ready or ScalingActive.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, pattern=r"^[A-Z][A-Za-z0-9]*$", description="CamelCase reason."
    )
    message: str = Field(default="", description="Human explanation, with the numbers.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the condition was set for.")


AGE = "Time since the object was created."


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""


@dataclass(frozen=True)
class ResourceDefinition:
    """What the CRD generator needs to know about one custom resource."""

    kind: str
    plural: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    description: str = ""
    group: str = GROUP
    version: str = VERSION
    scope: str = "Namespaced"
    categories: tuple[str, ...] = field(default=("adaptive",))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"
