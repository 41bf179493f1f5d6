"""Shared pieces of the resource models: camelCase aliases and Kubernetes conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "adaptive.dev"
VERSION = "v1alpha1"

# Bounds on what a tenant may write (one object must not hurt the others): the CRDs carry them,
# the models enforce them, and the commands that share a contract with a field use the same.
MAX_REPLICAS = 100_000
MAX_LOOK_AHEAD_SECONDS = 86_400
# A forecast keeps, per look-ahead row, a day of errors and one forecast per row: bounded so
# that one object's spec cannot make the operator allocate gigabytes.
MAX_LOOK_AHEAD_ROWS = 360
MAX_HISTORY_ROWS = 100_000
MAX_HISTORY_SECONDS = 90 * 86_400
MAX_PERIOD_SECONDS = 86_400  # cooldowns, windows, periods
MAX_QUERY_LENGTH = 4096  # a PromQL query; status and Events quote it
MAX_URL_LENGTH = 2048
MAX_METRICS = 16
NAME_LENGTH = 63  # a DNS-1123 label, a metric name, a condition type or reason
SUBDOMAIN_LENGTH = 253  # a DNS-1123 subdomain: an object name
MESSAGE_LENGTH = 1024  # what status keeps of one message (the rest is cut, marked)
MAX_CONDITIONS = 16
# What status keeps of the scaling history: the newest records (a 1 s sync with an hour's
# stabilization window would otherwise keep 3,600 of them in every object).
MAX_HISTORY_RECORDS = 512
MAX_OVERRIDES = 64  # override times kept: a conflict needs only the last few
MAX_OUTCOMES = 8  # the healing ledger's outcome kinds counted in status
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CAMEL_CASE = r"^[A-Z][A-Za-z0-9]*$"
API_VERSION = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$"


def truncated(message: str, limit: int = MESSAGE_LENGTH) -> str:
    """A message cut to `limit` characters, marked as cut: a 1 MB query quoted in every
    condition must not push status past the object size limit."""
    if len(message) <= limit:
        return message
    if limit < 80:  # too short for the marker to leave much: cut plainly
        return message[:limit]
    keep = limit - 40  # room for the marker
    return message[:keep] + f"... ({len(message) - keep} characters cut)"


def _cut_to(limit: int) -> BeforeValidator:
    def cut(value: Any) -> Any:
        return truncated(value, limit) if isinstance(value, str) else value
    return BeforeValidator(cut)


# Every string of a status has a bound (the API server refuses the whole status write when one is
# longer), and is cut to it where it is set (marked as cut when long enough): a name, reason,
# time or identifier; a reference to an object; a message for people.
STATUS_NAME_LENGTH = NAME_LENGTH * 2
StatusName = Annotated[str, _cut_to(STATUS_NAME_LENGTH), Field(max_length=STATUS_NAME_LENGTH)]
StatusRef = Annotated[str, _cut_to(SUBDOMAIN_LENGTH), Field(max_length=SUBDOMAIN_LENGTH)]
StatusText = Annotated[str, _cut_to(MESSAGE_LENGTH), Field(max_length=MESSAGE_LENGTH)]


class KubeModel(BaseModel):
    """camelCase in YAML, snake_case in Python; unknown fields refused (the API server prunes)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """A condition as the Kubernetes API conventions describe it."""

    type: str = Field(min_length=1, max_length=NAME_LENGTH,
                      description="Condition type, e.g. Ready or ScalingActive.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, max_length=NAME_LENGTH * 2, pattern=CAMEL_CASE,
        description="CamelCase reason.")
    message: str = Field(default="", max_length=MESSAGE_LENGTH,
                         description="Human explanation, with the numbers.")
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
