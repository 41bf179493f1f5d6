"""The CRD reference generated from the models: complete, in words, and committed in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptive_operator.api import reference
from adaptive_operator.api.crd import RESOURCES, object_schema
from adaptive_operator.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_committed_reference_matches_the_models() -> None:
    committed = REPO / "docs" / "crd-reference.md"
    assert committed.exists(), "docs/crd-reference.md missing: run `adaptive-operator crds`"
    assert committed.read_text(encoding="utf-8") == reference.render_reference(), (
        "docs/crd-reference.md drifted from the models: run `adaptive-operator crds`")


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_is_described(resource: object, part: str) -> None:
    schema = object_schema(resource)["properties"][part]  # type: ignore[arg-type]
    rows = list(reference.fields(schema, part))[1:]
    assert rows
    assert [r.path for r in rows if not r.description] == []


def test_every_printer_column_is_described() -> None:
    missing = [f"{r.kind}.{c.name}" for r in RESOURCES for c in r.printer_columns
               if not c.description]
    assert missing == []


def test_every_field_of_the_models_has_a_row() -> None:
    text = reference.render_reference()
    for path in ("spec.scaleTargetRef.name", "spec.metrics[].targetPerReplica",
                 "spec.behavior.scaleDown.policies[].periodSeconds",
                 "spec.predictive.historySeconds", "spec.healing.persistence.k",
                 "status.conditions[].lastTransitionTime", "status.forecast.forecast[].pHigh",
                 "status.healing.ledger.byOutcome", "spec.rebalance.hysteresis",
                 "spec.migration.backoffSeconds"):
        assert f"| `{path}` |" in text, path


def test_types_are_said_as_a_reader_says_them() -> None:
    assert reference.type_name({"type": "array", "items": {"type": "object"}}) == (
        "array of object")
    assert reference.type_name(
        {"type": "object", "additionalProperties": {"type": "integer"}}) == "map of integer"
    assert reference.type_name(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True}) == (
        "object (free-form)")
    assert reference.type_name({"type": "string", "format": "date-time"}) == (
        "string (date-time)")
    assert reference.type_name({}) == "object"


def test_constraints_in_words() -> None:
    node = {"type": "number", "minimum": 0.5, "exclusiveMinimum": True, "maximum": 1048576,
            "nullable": True, "pattern": "^a$", "enum": ["A", "B"], "minLength": 1,
            "maxLength": 9, "minItems": 1, "maxItems": 3, "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"]}
    assert reference.constraints(node, required=True) == (
        "required; may be null; one of `A`, `B`; > 0.5; <= 1048576; length >= 1; "
        "length <= 9; items >= 1; items <= 3; matches `^a$`; a list keyed by type")
    assert reference.constraints({"type": "string"}, required=False) == ""


def test_pipes_are_escaped_and_rules_listed() -> None:
    text = reference.render_reference()
    assert "`!has(self.hysteresis) \\|\\| self.hysteresis <= self.imbalanceThreshold`" in text
    assert "| `spec` | `self.minReplicas <= self.maxReplicas` |" in text


def test_map_values_with_fields_get_rows() -> None:
    schema = {"type": "object", "properties": {"m": {
        "type": "object", "additionalProperties": {
            "type": "object", "description": "one", "properties": {
                "x": {"type": "integer", "default": 3, "description": "an x"}}}}}}
    rows = {r.path: r for r in reference.fields(schema, "spec")}
    assert rows["spec.m.<key>.x"].default == "`3`"
    assert rows["spec.m"].type == "map of object"


def test_crds_command_writes_and_checks_the_reference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "docs" / "ref.md"
    args = ["crds", "--out", str(tmp_path / "crds"), "--reference", str(doc)]
    assert main([*args, "--check"]) == 1
    assert "ref.md: missing" in capsys.readouterr().out
    assert main(args) == 0
    assert doc.read_text(encoding="utf-8") == reference.render_reference()
    assert main([*args, "--check"]) == 0
    doc.write_text(doc.read_text(encoding="utf-8").replace("Load one replica", "Load 1"))
    assert main([*args, "--check"]) == 1
    assert "ref.md: 2 line(s) differ, first: -" in capsys.readouterr().out


def test_crds_check_by_default_covers_the_committed_reference(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--check"]) == 0, capsys.readouterr().out


def test_an_object_without_rules_gets_no_rules_table() -> None:
    assert reference._rules({"type": "object", "properties": {"a": {"type": "string"}}}) == []
