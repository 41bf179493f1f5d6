"""The `coupling` block of an AdaptiveService spec, and what status reports about it."""

from __future__ import annotations

from pydantic import Field

from adaptive_operator.api.base import (
    MAX_LOOK_AHEAD_ROWS,
    KubeModel,
    StatusName,
    StatusRef,
    StatusText,
)
from adaptive_operator.api.predictive import ForecastPointStatus

MAX_UPSTREAMS = 4
# A Kubernetes object name (DNS-1123 subdomain) and a metric name as the spec's metrics have.
SERVICE_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
METRIC_PATTERN = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"


class CouplingSpec(KubeModel):
    """An upstream service whose load this service's load follows."""

    service: str = Field(min_length=1, max_length=253, pattern=SERVICE_PATTERN,
                         description="Another AdaptiveService in the same namespace.")
    metric: str = Field(min_length=1, max_length=63, pattern=METRIC_PATTERN,
                        description="One of its metrics; this service's first metric is "
                        "forecast from it.")


class UpstreamRelation(KubeModel):
    """How this service's load follows one upstream's, as last fitted."""

    service: StatusRef = Field(description="The upstream AdaptiveService.")
    metric: StatusName = Field(description="Its metric.")
    ratio: float | None = Field(default=None, description="Load here per unit of load there.")
    lag_seconds: float | None = Field(default=None, description="How much later it arrives.")


class CouplingStatus(KubeModel):
    """Whether the coupled forecast drives scaling, and why."""

    trusted: bool = Field(default=False, description="The coupled forecast raises the replicas "
                          "(its realised error is below the own forecast's).")
    reason: StatusText = Field(default="", description="Why it is, or is not, trusted.")
    upstreams: list[UpstreamRelation] = Field(default_factory=list, max_length=MAX_UPSTREAMS,
                                              description="The fitted relation per upstream.")
    intercept: float | None = Field(default=None, description="Load here not explained by "
                                    "the upstreams.")
    relative_error: float | None = Field(default=None, description="Realised error of the "
                                         "coupled forecast over the own forecast's.")
    floor_replicas: int | None = Field(default=None, description="Replicas the trusted coupled "
                                       "forecast asks for.")
    forecast: list[ForecastPointStatus] = Field(
        default_factory=list, max_length=MAX_LOOK_AHEAD_ROWS,
        description="The coupled forecast over the look-ahead (a "
        "downstream of this service reads it while trusted).")
    summary: StatusText = Field(default="", description="Upstreams and Trusted, Untrusted or "
                                "Refused (the COUPLING column).")
