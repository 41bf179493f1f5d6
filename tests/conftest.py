"""Hypothesis without wall-clock checks: a deadline or a too-slow health check fails a test for
the machine's load, not for the code (speed is measured in benchmarks/, never asserted here)."""

from hypothesis import HealthCheck, settings

settings.register_profile("adaptive", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("adaptive")

# The `helm` fixture of the chart tests, shared with the other chart test modules.
from test_chart import helm  # noqa: E402, F401
