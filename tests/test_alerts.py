"""The chart's alerts: valid rules (`promtool check rules`) that fire when they should and not
otherwise (`promtool test rules` on tests/alerts/alerts_test.yaml); promtool is the test
cluster's, built from its Go module (e2e/build/prometheus)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from built_tools import built

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "charts" / "adaptive-operator" / "files" / "alerts.yaml"
UNIT_TESTS = REPO / "tests" / "alerts" / "alerts_test.yaml"
ALERTS = {"AdaptiveOperatorDown", "AdaptiveOperatorNotLeading", "AdaptiveForecastUntrusted",
          "AdaptiveHealingGaveUp", "AdaptiveShardMigrationStuck", "AdaptiveMetricsUnavailable"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return str(built("prometheus", "promtool"))


def test_the_rules_are_valid(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_the_rules_fire_when_they_should(promtool: str) -> None:
    result = subprocess.run([promtool, "test", "rules", str(UNIT_TESTS)], capture_output=True,
                            text=True, check=False, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_every_metric_is_exported() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == ALERTS
    tested = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    named = {a["alertname"] for t in tested["tests"] for a in t["alert_rule_test"]}
    assert named == ALERTS
    telemetry = (REPO / "operator" / "adaptive_operator" / "adapters" / "telemetry.py").read_text(
        encoding="utf-8")
    for metric in ("adaptive_leader", "adaptive_forecast_reliable", "adaptive_metrics_available",
                   "adaptive_healing_decisions_total", "adaptive_shard_migrations_in_progress",
                   "adaptive_shard_routing_epoch"):
        assert any(metric in r["expr"] for r in rules), metric
        assert f'"{metric.removesuffix("_total")}' in telemetry, metric
