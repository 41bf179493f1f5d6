"""CustomResourceDefinitions generated from the pydantic models (the one source of truth).

Pydantic emits JSON Schema (draft 2020-12); the API server wants a *structural* OpenAPI v3
schema: every node typed, no `$ref`, no `anyOf` with null (`nullable: true` instead), boolean
`exclusiveMinimum`, and no `additionalProperties: false` next to `properties` (the API server
prunes unknown fields instead). Rules that span fields travel as `x-kubernetes-validations`
(CEL), declared on the model with `json_schema_extra`.
"""

from __future__ import annotations

from typing import Any

import yaml

from adaptive_operator.api import adaptive_service, shard_set
from adaptive_operator.api.base import ResourceDefinition

# The resources the operator serves; another resource registers here (one line per kind).
RESOURCES: tuple[ResourceDefinition, ...] = (adaptive_service.RESOURCE, shard_set.RESOURCE)

Schema = dict[str, Any]

_DROPPED = {"title", "$defs"}
_NULL = {"type": "null"}
_FIRST = {"type": 0, "description": 1}


def _inline_ref(node: Schema, defs: dict[str, Schema]) -> Schema:
    name = node["$ref"].rsplit("/", 1)[-1]
    merged = dict(defs[name])
    # Keys next to the $ref (a field's description, default) win over the definition's.
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _collapse_null(node: Schema) -> Schema:
    options = node["anyOf"]
    others = [o for o in options if o != _NULL]
    if len(others) != 1:
        raise ValueError(f"cannot express a union of {len(others)} types structurally: {options}")
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged.update(others[0])
    if len(others) != len(options):
        merged["nullable"] = True
    return merged


def _exclusive_bounds(node: Schema) -> Schema:
    """JSON Schema's numeric exclusive bounds become OpenAPI v3.0's boolean form."""
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(exclusive)
        if value is not None and not isinstance(value, bool):
            node[bound] = value
            node[exclusive] = True
    return node


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """The node with its own `$ref` and `anyOf`-with-null resolved, children untouched."""
    while "$ref" in node or "anyOf" in node:
        node = _inline_ref(node, defs) if "$ref" in node else _collapse_null(node)
    return node


def _clean(node: Schema) -> Schema:
    out = {k: v for k, v in node.items() if k not in _DROPPED}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("default", 0) is None:
        del out["default"]
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return _exclusive_bounds(out)


def _ordered(node: Schema) -> Schema:
    """`type` and `description` first: the generated YAML is read by people too."""
    return {k: node[k] for k in sorted(node, key=lambda k: (_FIRST.get(k, len(_FIRST)), k))}


def _normalise(node: Schema, defs: dict[str, Schema]) -> Schema:
    return _ordered(_clean(_resolve(node, defs)))


def structural(node: Schema, defs: dict[str, Schema] | None = None) -> Schema:
    """A structural OpenAPI v3 schema from a pydantic JSON schema."""
    defs = node.get("$defs", {}) if defs is None else defs
    out = _normalise(dict(node), defs)
    if "properties" in out:
        out["properties"] = {k: structural(v, defs) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = structural(out["items"], defs)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(out["additionalProperties"], defs)
    return out


def model_schema(model: type[Any]) -> Schema:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def object_schema(resource: ResourceDefinition) -> Schema:
    return {
        "type": "object",
        "description": resource.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(resource.spec_model),
            "status": model_schema(resource.status_model),
        },
    }


def build_crd(resource: ResourceDefinition) -> Schema:
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"description": c.description} if c.description else {}),
        }
        for c in resource.printer_columns
    ]
    names: Schema = {
        "kind": resource.kind,
        "listKind": f"{resource.kind}List",
        "plural": resource.plural,
        "singular": resource.singular,
    }
    if resource.short_names:
        names["shortNames"] = list(resource.short_names)
    if resource.categories:
        names["categories"] = list(resource.categories)
    version: Schema = {
        "name": resource.version,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
        "schema": {"openAPIV3Schema": object_schema(resource)},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.crd_name},
        "spec": {
            "group": resource.group,
            "names": names,
            "scope": resource.scope,
            "versions": [version],
        },
    }


HEADER = "# Generated by `adaptive-operator crds` from the pydantic models: do not edit.\n"


class _PlainDumper(yaml.SafeDumper):
    """Never writes YAML anchors/aliases, which schemas shared between fields would produce."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# YAML 1.1 booleans that PyYAML writes bare but Go's YAML (kubectl, the API server) reads as
# true/false: a property named `n` would silently become a property named `false`.
_GO_YAML_BOOLS = frozenset({"y", "Y", "n", "N"})


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if data in _GO_YAML_BOOLS else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_PlainDumper.add_representer(str, _represent_str)


def render_crd(resource: ResourceDefinition) -> str:
    body = yaml.dump(
        build_crd(resource), Dumper=_PlainDumper, sort_keys=False, width=100, allow_unicode=True
    )
    return HEADER + body


def file_name(resource: ResourceDefinition) -> str:
    return f"{resource.crd_name}.yaml"


def render_all(resources: tuple[ResourceDefinition, ...] = RESOURCES) -> dict[str, str]:
    """File name -> YAML text, for every registered resource."""
    return {file_name(r): render_crd(r) for r in resources}
