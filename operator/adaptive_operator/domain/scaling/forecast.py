"""What one sync's forecasting gives the decision and the status: per metric, and combined."""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_operator.domain.scaling.lookahead import LookAhead
from adaptive_operator.domain.scaling.predictive import PredictiveState


@dataclass(frozen=True)
class MetricForecast:
    metric: str
    floor: int | None
    state: PredictiveState
    ignored: str = ""  # samples the backfill left out, e.g. "ignored 3 NaN samples"

    @property
    def ceiling(self) -> int | None:
        """Replicas this metric's forecast lets the service scale down to (scale-down on
        forecast, trusted forecast), else None."""
        return self.state.scale_down_to if self.state.reliable else None


@dataclass(frozen=True)
class ServiceForecast:
    """What one sync's forecasting gives the decision and the status."""

    floor: int | None
    lead: MetricForecast  # the metric shown in status: the one asking most, else the first
    look_ahead: LookAhead
    metrics: tuple[MetricForecast, ...]
    ceiling: int | None = None

    @property
    def reliable(self) -> bool:
        return any(m.state.reliable for m in self.metrics)


def combine(results: tuple[MetricForecast, ...], ahead: LookAhead) -> ServiceForecast:
    """The floor is the largest any metric's trusted forecast asks for. The ceiling is the
    largest of the metrics' ceilings, and only when every metric has one: a metric whose
    forecast is not trusted (or which never scales down on it) keeps its reactive say."""
    lead = _lead(results)
    return ServiceForecast(lead.floor, lead, ahead, results, _ceiling(results))


def _lead(results: tuple[MetricForecast, ...]) -> MetricForecast:
    """The metric whose floor is highest; without floors, the first with a forecast, else the
    first."""
    floors = [r for r in results if r.floor is not None]
    if floors:
        return max(floors, key=lambda r: r.floor or 0)
    return next((r for r in results if r.state.forecast), results[0])


def _ceiling(results: tuple[MetricForecast, ...]) -> int | None:
    ceilings = [r.ceiling for r in results]
    return max(c for c in ceilings if c is not None) if None not in ceilings else None
