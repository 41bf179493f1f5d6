"""Load forecasting: models behind a registry, seasonality detection, cleaning, backtest, and the
amortised online engine the predictive advisor runs."""

from adaptive_operator.domain.forecasting.engine import Band, EngineSettings, ForecastEngine
from adaptive_operator.domain.forecasting.models import (
    FORECASTERS,
    FittedModel,
    Forecaster,
    ModelKind,
    forecaster,
)

__all__ = [
    "FORECASTERS",
    "Band",
    "EngineSettings",
    "FittedModel",
    "ForecastEngine",
    "Forecaster",
    "ModelKind",
    "forecaster",
]
