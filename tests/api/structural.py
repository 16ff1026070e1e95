"""Kubernetes' structural-schema rules for a CRD's `openAPIV3Schema`, as the API server applies them.

A schema the API server refuses leaves the CRD unapplied (or, on update, frozen at its last good
version), so the tests check ours before any cluster sees them. The rules, from the Kubernetes
docs ("Specifying a structural schema") and apiextensions-apiserver's CRD validation:

1. a non-empty `type` at the root, for every field given by `properties` or `additionalProperties`
   and for the `items` of every array, except under `x-kubernetes-int-or-string` or
   `x-kubernetes-preserve-unknown-fields: true`;
2. every field or item named inside `allOf`/`anyOf`/`oneOf`/`not` is also specified outside them;
3. no `description`, `type`, `default`, `additionalProperties`, `nullable` (nor other
   `x-kubernetes-*` extensions) inside those junctors, except the two int-or-string patterns;
4. `metadata` may restrict only `metadata.name` and `metadata.generateName`;
and from the CRD validation itself: `properties` and `additionalProperties` are mutually exclusive,
`uniqueItems: true`, `$ref` and the other JSON-Schema keywords that `JSONSchemaProps` lacks are
refused, `x-kubernetes-preserve-unknown-fields` is true or absent, list/map types match `type`,
and an array has a single `items` schema.
"""

from __future__ import annotations

from typing import Any

# The fields of apiextensions.k8s.io/v1 JSONSchemaProps: anything else fails strict decoding.
KEYWORDS = frozenset({
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
    "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties", "minProperties", "required", "items",
    "allOf", "oneOf", "anyOf", "not", "properties", "additionalProperties", "patternProperties",
    "dependencies", "additionalItems", "definitions", "externalDocs", "example", "nullable",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
})
# In JSONSchemaProps, but refused in a CRD's schema.
UNSUPPORTED = ("$ref", "$schema", "id", "definitions", "dependencies", "patternProperties", "additionalItems")
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
NOT_IN_JUNCTORS = ("description", "type", "default", "additionalProperties", "nullable")
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
META_FIELDS = ("metadata", "apiVersion", "kind")


def violations(schema: Any) -> list[str]:
    """Every way `schema` (a CRD version's openAPIV3Schema) is not structural; [] when it is."""
    out: list[str] = []
    if not isinstance(schema, dict):
        return ["openAPIV3Schema: must be a schema object"]
    if schema.get("type") != "object":
        out.append("openAPIV3Schema.type: must be object at the root")
    _node(schema, "openAPIV3Schema", out, resource=True)
    return out


def _typed(node: dict[str, Any]) -> bool:
    return bool(node.get("type")) or node.get("x-kubernetes-int-or-string") is True or (
        node.get("x-kubernetes-preserve-unknown-fields") is True
    )


def _node(node: Any, path: str, out: list[str], resource: bool = False) -> None:
    if not isinstance(node, dict):
        out.append(f"{path}: must be a schema object")
        return
    for key in node:
        if key not in KEYWORDS:
            out.append(f"{path}.{key}: unknown field (not a CRD schema keyword)")
        elif key in UNSUPPORTED:
            out.append(f"{path}.{key}: not supported in a CRD schema")
    kind = node.get("type")
    if kind and kind not in TYPES:
        out.append(f"{path}.type: unsupported type {kind!r}")
    if node.get("uniqueItems") is True:
        out.append(f"{path}.uniqueItems: cannot be true (quadratic to check)")
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        out.append(f"{path}.x-kubernetes-preserve-unknown-fields: must be true or undefined")
    if node.get("x-kubernetes-int-or-string") is True and kind:
        out.append(f"{path}.type: must be empty if x-kubernetes-int-or-string is true")
    if "x-kubernetes-list-type" in node and kind != "array":
        out.append(f"{path}.type: must be array if x-kubernetes-list-type is specified")
    if "x-kubernetes-map-type" in node and kind != "object":
        out.append(f"{path}.type: must be object if x-kubernetes-map-type is specified")

    props = node.get("properties")
    if props is not None and not isinstance(props, dict):
        out.append(f"{path}.properties: must be a map of schemas")
        props = {}
    props = props or {}
    extra = node.get("additionalProperties")
    if extra is not None and props and extra is not True:
        out.append(f"{path}.additionalProperties: additionalProperties and properties are mutually exclusive")
    if props and kind not in ("object", None):
        out.append(f"{path}.properties: only an object has properties (type is {kind})")
    items = node.get("items")
    if items is not None and not isinstance(items, dict):
        out.append(f"{path}.items: must be a single schema, not a list")
    if kind == "array" and not isinstance(items, dict):
        out.append(f"{path}.items: must be specified for an array")

    children = [(f"{path}.properties[{name}]", sub) for name, sub in props.items()]
    if isinstance(extra, dict):
        children.append((f"{path}.additionalProperties", extra))
    if isinstance(items, dict):
        children.append((f"{path}.items", items))
    for where, child in children:
        if isinstance(child, dict) and not _typed(child):
            out.append(f"{where}.type: must not be empty for a specified field or item")
        _node(child, where, out, resource=isinstance(child, dict) and child.get("x-kubernetes-embedded-resource") is True)

    if resource:
        _resource_meta(props, path, out)
    for junctor in JUNCTORS:
        for where, sub in _branches(node, junctor, path, out):
            _junction(sub, where, node, junctor, out)


def _resource_meta(props: dict[str, Any], path: str, out: list[str]) -> None:
    """At a resource's root: metadata restricts name/generateName only; apiVersion and kind are strings."""
    meta = props.get("metadata")
    if isinstance(meta, dict):
        if meta.get("type") not in (None, "object"):
            out.append(f"{path}.properties[metadata].type: must be object")
        for name in meta.get("properties") or {}:
            if name not in ("name", "generateName"):
                out.append(f"{path}.properties[metadata].properties[{name}]: only name and generateName may be "
                           "restricted in metadata")
        for key in meta:
            if key not in ("type", "properties", "description"):
                out.append(f"{path}.properties[metadata].{key}: must not be set (metadata is implicitly specified)")
    for name in ("apiVersion", "kind"):
        sub = props.get(name)
        if isinstance(sub, dict) and sub.get("type") not in (None, "string"):
            out.append(f"{path}.properties[{name}].type: must be string")


def _branches(node: dict[str, Any], junctor: str, path: str, out: list[str]) -> list[tuple[str, Any]]:
    value = node.get(junctor)
    if value is None:
        return []
    if junctor == "not":
        return [(f"{path}.not", value)]
    if not isinstance(value, list):
        out.append(f"{path}.{junctor}: must be a list of schemas")
        return []
    return [(f"{path}.{junctor}[{n}]", sub) for n, sub in enumerate(value)]


def _int_or_string_branch(sub: dict[str, Any], outside: dict[str, Any]) -> bool:
    """`anyOf: [{type: integer}, {type: string}]` under x-kubernetes-int-or-string (also inside allOf)."""
    return outside.get("x-kubernetes-int-or-string") is True and sub.get("type") in ("integer", "string") and (
        set(sub) <= {"type"}
    )


def _junction(sub: Any, path: str, outside: dict[str, Any], junctor: str, out: list[str]) -> None:
    """Inside a junctor: value validations only, on fields and items the structural part specifies."""
    if not isinstance(sub, dict):
        out.append(f"{path}: must be a schema object")
        return
    for key in sub:
        if key not in KEYWORDS:
            out.append(f"{path}.{key}: unknown field (not a CRD schema keyword)")
        elif key in NOT_IN_JUNCTORS and not (key == "type" and _int_or_string_branch(sub, outside)):
            out.append(f"{path}.{key}: must not be set inside {junctor}")
        elif key.startswith("x-kubernetes-"):
            out.append(f"{path}.{key}: must not be set inside {junctor}")
    inside_props = sub.get("properties") or {}
    outside_props = outside.get("properties") or {}
    for name, child in inside_props.items() if isinstance(inside_props, dict) else ():
        if name not in outside_props:
            out.append(f"{path}.properties[{name}]: must also be specified outside {junctor}")
        else:
            _junction(child, f"{path}.properties[{name}]", outside_props[name], junctor, out)
    if isinstance(sub.get("items"), dict):
        if not isinstance(outside.get("items"), dict):
            out.append(f"{path}.items: must also be specified outside {junctor}")
        else:
            _junction(sub["items"], f"{path}.items", outside["items"], junctor, out)
    for nested in JUNCTORS:
        for where, deeper in _branches(sub, nested, path, out):
            _junction(deeper, where, outside, junctor, out)
