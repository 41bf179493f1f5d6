"""Hypothesis strategies for the objects a CRD's structural schema admits, built from the
shipped CRD YAML itself (what the API server enforces), not from the pydantic models: so a
property over them checks that the models accept what the API server lets through.

Covers the keywords the generated CRDs use: type, properties, required, nullable, default,
enum, pattern, minLength, minimum/maximum (with OpenAPI v3.0's boolean exclusive bounds),
items, minItems, additionalProperties and x-kubernetes-preserve-unknown-fields. CEL rules
(x-kubernetes-validations) are not evaluated: a property test checks them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
Schema = dict[str, Any]
MAX_INT = 2**31 - 1  # int32: replicas, seconds; larger integers are refused by the fields' users
FREE_FORM = st.dictionaries(
    st.sampled_from(["a", "spec", "metadata"]), st.integers(0, 3) | st.text(max_size=3), max_size=2
)


def spec_schema(plural: str) -> Schema:
    """The `spec` schema of the first served version of crds/<plural>.adaptive.dev.yaml."""
    crd = yaml.safe_load((ROOT / "crds" / f"{plural}.adaptive.dev.yaml").read_text())
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def cel_rules(schema: Schema) -> list[dict[str, str]]:
    """Every CEL rule anywhere in the schema, with its message."""
    found = list(schema.get("x-kubernetes-validations", []))
    for child in (schema.get("properties") or {}).values():
        found += cel_rules(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += cel_rules(schema[key])
    return found


def admitted(schema: Schema) -> st.SearchStrategy[Any]:
    """Values the structural schema admits (a missing optional field is left out)."""
    value = _typed(schema)
    return st.none() | value if schema.get("nullable") else value


def _typed(schema: Schema) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    makers = {
        "object": _object,
        "array": _array,
        "string": _string,
        "integer": _integer,
        "number": _number,
    }
    if kind == "boolean":
        return st.booleans()
    if kind not in makers:
        raise ValueError(f"no strategy for schema type {kind!r}")
    return makers[kind](schema)


def _object(schema: Schema) -> st.SearchStrategy[Any]:
    properties: dict[str, Schema] = schema.get("properties") or {}
    if not properties:
        if isinstance(schema.get("additionalProperties"), dict):
            return st.dictionaries(
                st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True),
                admitted(schema["additionalProperties"]),
                max_size=4,
            )
        return FREE_FORM  # x-kubernetes-preserve-unknown-fields
    required = set(schema.get("required") or ())
    return st.fixed_dictionaries(
        {k: admitted(v) for k, v in properties.items() if k in required},
        optional={k: admitted(v) for k, v in properties.items() if k not in required},
    )


def _array(schema: Schema) -> st.SearchStrategy[Any]:
    least = int(schema.get("minItems", 0))
    return st.lists(admitted(schema["items"]), min_size=least, max_size=least + 2)


def _string(schema: Schema) -> st.SearchStrategy[Any]:
    least = int(schema.get("minLength", 0))
    if "pattern" in schema:
        found = st.from_regex(schema["pattern"], fullmatch=True)
        return found.filter(lambda text: least <= len(text) <= 40)
    return st.text(min_size=least, max_size=least + 20)


def _bounds(schema: Schema) -> tuple[float | None, float | None, bool, bool]:
    return (
        schema.get("minimum"),
        schema.get("maximum"),
        bool(schema.get("exclusiveMinimum")),
        bool(schema.get("exclusiveMaximum")),
    )


def _integer(schema: Schema) -> st.SearchStrategy[Any]:
    low, high, ex_low, ex_high = _bounds(schema)
    least = -MAX_INT if low is None else int(low) + int(ex_low)
    most = MAX_INT if high is None else int(high) - int(ex_high)
    return st.integers(least, most)


def _number(schema: Schema) -> st.SearchStrategy[Any]:
    low, high, ex_low, ex_high = _bounds(schema)
    return st.floats(
        -1e12 if low is None else low,
        1e12 if high is None else high,
        exclude_min=ex_low and low is not None,
        exclude_max=ex_high and high is not None,
        allow_nan=False,
        allow_infinity=False,
    )
