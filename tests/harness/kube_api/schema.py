r"""A CRD version's openAPIV3Schema applied as the API server applies it to custom resources.

Order, as in the real server: prune unknown fields (structural pruning), apply defaults,
validate against the schema (jsonschema Draft 7 after translating the Kubernetes dialect),
then evaluate `x-kubernetes-validations` CEL rules (see `cel`; a rule it cannot evaluate
refuses the CRD, it is never skipped).

Kubernetes extensions honoured: `x-kubernetes-preserve-unknown-fields`,
`x-kubernetes-embedded-resource`, `x-kubernetes-int-or-string`, `nullable`,
`x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys` (to pair list items with
their old versions for transition rules) and draft-4 style boolean `exclusiveMinimum`.
Also checked as the real server does: `format: date-time` (RFC 3339), and the uniqueness of
`x-kubernetes-list-type: map` keys and `set` items (Duplicate value). Other formats are not checked.
`pattern` is RE2 on the API server: its `\x{...}` code points,
`\z` and end-anchoring `$` are translated to Python's spelling (`re2_to_python`).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from . import cel
from .errors import FieldError, forbidden, invalid, required

log = logging.getLogger(__name__)
# RFC 3339 date-time, as Kubernetes' strfmt checks `format: date-time`.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

_DROPPED_KEYS = {"nullable", "default", "description", "example", "externalDocs", "format", "title"}
_CEL_REASONS = {
    "FieldValueForbidden": "FieldValueForbidden",
    "FieldValueRequired": "FieldValueRequired",
    "FieldValueDuplicate": "FieldValueDuplicate",
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def re2_to_python(pattern: str) -> str:
    r"""An RE2 (Go regexp) pattern in Python's `re` spelling.

    Two differences matter for CRD patterns: RE2 writes code points as `\x{202A}` (Python:
    `\U0000202A`), and RE2's `$` (and `\z`) match only at the very end of the text, where
    Python's `$` also matches before a final newline (so `^[a-z]+$` would admit "abc\n").
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "x" and pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 3)
                if end != -1:
                    try:
                        out.append(f"\\U{int(pattern[i + 3:end], 16):08X}")
                        i = end + 1
                        continue
                    except ValueError:
                        pass
            out.append("\\Z" if nxt == "z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]" or out[-1] in ("[", "[^")
        elif ch == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
        elif ch == "$":
            ch = "\\Z"
        out.append(ch)
        i += 1
    return "".join(out)


def to_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate a Kubernetes structural schema node into plain JSON Schema (Draft 7)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(sub) for sub in value]
        elif key == "pattern" and isinstance(value, str):
            out[key] = re2_to_python(value)
        elif key not in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key] = value
    # Draft-4 style booleans (OpenAPI v3.0) become Draft 7 numeric bounds.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if schema.get(flag) is True and bound in out:
            out[flag] = out.pop(bound)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _root_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """At the root, metadata is ObjectMeta: only name/generateName constraints apply."""
    root = to_jsonschema(schema)
    props = root.get("properties", {})
    meta = schema.get("properties", {}).get("metadata")
    if meta is not None:
        kept = {k: v for k, v in (meta.get("properties") or {}).items() if k in ("name", "generateName")}
        props["metadata"] = {"type": "object", "properties": {k: to_jsonschema(v) for k, v in kept.items()}}
    return root


_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def check_structure(node: Any, path: str = "openAPIV3Schema") -> list[str]:
    """What the API server checks of a CRD schema's shape (not a JSON meta-schema pass:
    that takes seconds on KubeRay's CRDs): known types, well-formed keywords, patterns."""
    if not isinstance(node, dict):
        return [f"{path}: must be an object"]
    problems = []
    kind = node.get("type")
    if kind is not None and kind not in _TYPES:
        problems.append(f'{path}.type: Unsupported value: "{kind}"')
    for key in ("properties", "patternProperties", "definitions"):
        value = node.get(key)
        if value is not None and not isinstance(value, dict):
            problems.append(f"{path}.{key}: must be an object")
        for name, sub in (value or {}).items() if isinstance(value, dict) else ():
            problems.extend(check_structure(sub, f"{path}.{key}[{name}]"))
    for key in ("items", "additionalProperties", "not"):
        sub = node.get(key)
        if isinstance(sub, dict):
            problems.extend(check_structure(sub, f"{path}.{key}"))
        elif sub is not None and not isinstance(sub, bool):
            problems.append(f"{path}.{key}: must be a schema")
    for key in ("allOf", "anyOf", "oneOf"):
        subs = node.get(key)
        if subs is not None and not isinstance(subs, list):
            problems.append(f"{path}.{key}: must be a list")
        for n, sub in enumerate(subs or []) if isinstance(subs, list) else ():
            problems.extend(check_structure(sub, f"{path}.{key}[{n}]"))
    if not isinstance(node.get("required", []), list):
        problems.append(f"{path}.required: must be a list")
    if not isinstance(node.get("enum", []), list):
        problems.append(f"{path}.enum: must be a list")
    if "pattern" in node:
        try:
            re.compile(re2_to_python(node["pattern"]))
        except (re.error, TypeError) as exc:
            problems.append(f"{path}.pattern: Invalid value: {node['pattern']!r}: {exc}")
    return problems


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_CACHE: dict[str, StructuralSchema] = {}


class StructuralSchema:
    def __init__(self, schema: dict[str, Any]) -> None:
        if not isinstance(schema, dict):
            raise ValueError("openAPIV3Schema must be an object")
        if schema.get("type") != "object":
            raise ValueError('must be "object" at the root')
        self.schema = schema
        problems = check_structure(schema)
        if problems:
            raise ValueError("; ".join(problems[:5]))
        self._validator = Draft7Validator(_root_jsonschema(schema))
        self._rules: dict[str, cel.Program] = {}
        for rule in _all_rules(schema):  # a rule the emulator cannot evaluate refuses the CRD, loudly
            try:
                self._compiled(rule)
            except cel.CelUnsupported as exc:
                raise ValueError(str(exc)) from None

    @classmethod
    def cached(cls, schema: dict[str, Any]) -> StructuralSchema:
        """The compiled schema, shared by every apply of the same CRD (KubeRay's take ~0.1 s)."""
        key = json.dumps(schema, sort_keys=True)
        compiled = _CACHE.pop(key, None) or cls(schema)
        _CACHE[key] = compiled  # most recently used last
        while len(_CACHE) > 64:
            _CACHE.pop(next(iter(_CACHE)))
        return compiled

    # --- pruning and defaulting ---------------------------------------------------------

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop fields the schema does not declare; returns their paths (for warnings)."""
        pruned: list[str] = []
        self._prune(obj, self.schema, "", pruned, root=True)
        return pruned

    def _prune(self, value: Any, schema: dict[str, Any], path: str, pruned: list[str], root: bool = False) -> None:
        if isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for n, item in enumerate(value):
                    self._prune(item, items, join(path, n), pruned)
            return
        if not isinstance(value, dict):
            return
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True or extra is True
        embedded = root or schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if embedded and key in ("apiVersion", "kind", "metadata"):
                continue  # ObjectMeta is the server's, never pruned by a CRD schema
            if key in props:
                self._prune(value[key], props[key], join(path, key), pruned)
            elif isinstance(extra, dict):
                self._prune(value[key], extra, join(path, key), pruned)
            elif not preserve:
                del value[key]
                pruned.append(join(path, key))

    def apply_defaults(self, obj: dict[str, Any]) -> None:
        self._default(obj, self.schema, root=True)

    def _default(self, value: Any, schema: dict[str, Any], root: bool = False) -> None:
        if isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for item in value:
                    self._default(item, items)
            return
        if not isinstance(value, dict):
            return
        for key, sub in (schema.get("properties") or {}).items():
            if root and key == "metadata":
                continue
            null = key in value and value[key] is None and not sub.get("nullable")
            if (key not in value or null) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            elif null:
                del value[key]  # as the server's PruneNonNullableNullsWithoutDefaults
            if key in value:
                self._default(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if value[key] is None and not extra.get("nullable") and "default" not in extra:
                    del value[key]
                elif key in value:
                    self._default(value[key], extra)

    # --- validation -----------------------------------------------------------------------

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
        errors: list[FieldError] = []
        seen: set[str] = set()
        for error in self._validator.iter_errors(obj):
            for field_error in convert_error(error):
                if field_error.text() not in seen:
                    seen.add(field_error.text())
                    errors.append(field_error)
        if not errors:
            self._check_formats_and_lists(obj, self.schema, "", errors)
        if errors:
            return errors  # CEL rules assume well-typed data
        self._check_rules(obj, old, old is not None, self.schema, "", errors)
        return errors

    def _check_formats_and_lists(self, value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
        if schema.get("format") == "date-time" and isinstance(value, str) and not _RFC3339.match(value):
            errors.append(invalid(path, value, f"{path} in body must be of type date-time: {value!r}"))
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                sub = props.get(key, extra if isinstance(extra, dict) else None)
                if isinstance(sub, dict) and not (path == "" and key == "metadata"):
                    self._check_formats_and_lists(item, sub, join(path, key), errors)
        elif isinstance(value, list):
            list_type, keys = schema.get("x-kubernetes-list-type"), schema.get("x-kubernetes-list-map-keys") or []
            seen: set[str] = set()
            for n, item in enumerate(value):
                if list_type == "map" and keys and isinstance(item, dict):
                    ident = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
                elif list_type == "set":
                    ident = json.dumps(item, sort_keys=True)
                else:
                    ident = ""
                if ident and ident in seen:
                    shown = json.loads(ident) if list_type == "map" else item
                    errors.append(FieldError(join(path, n), "FieldValueDuplicate", "", shown, True))
                seen.add(ident)
                if isinstance(schema.get("items"), dict):
                    self._check_formats_and_lists(item, schema["items"], join(path, n), errors)

    def _compiled(self, rule: str) -> cel.Program:
        if rule not in self._rules:
            self._rules[rule] = cel.compile_rule(rule)  # CelUnsupported: never skipped silently
        return self._rules[rule]

    def _check_rules(self, value: Any, old: Any, has_old: bool, schema: dict[str, Any], path: str,
                     errors: list[FieldError]) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            error = self._check_rule(rule, value, old, has_old, path)
            if error is not None:
                errors.append(error)
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                sub = props.get(key, extra if isinstance(extra, dict) else None)
                if sub is None or (path == "" and key == "metadata"):
                    continue
                item_has_old = has_old and isinstance(old, dict) and key in old
                self._check_rules(item, old.get(key) if item_has_old else None, item_has_old, sub,
                                  join(path, key), errors)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            olds = _correlate(value, old if has_old else None, schema)
            for n, item in enumerate(value):
                self._check_rules(item, olds[n], olds[n] is not None, schema["items"], join(path, n), errors)

    def _check_rule(self, rule: dict[str, Any], value: Any, old: Any, has_old: bool,
                    path: str) -> FieldError | None:
        source = rule.get("rule", "")
        node = self._compiled(source)
        transition = cel.references(node, "oldSelf")
        if transition and not has_old and not rule.get("optionalOldSelf"):
            return None  # transition rules only run on updates that had a value before
        env = {"self": value, "oldSelf": old if has_old else None}
        field_path = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
        try:
            ok = cel.evaluate(node, env)
        except cel.CelError as exc:
            return invalid(field_path, _type_name(value), f"{exc} evaluating rule: {source}")
        if ok is True:
            return None
        message = rule.get("message") or f"failed rule: {source}"
        if rule.get("messageExpression"):
            try:
                custom = cel.evaluate(cel.compile_rule(rule["messageExpression"]), env)
                if isinstance(custom, str) and custom.strip():
                    message = custom
            except (cel.CelError, cel.CelUnsupported):
                pass
        reason = _CEL_REASONS.get(rule.get("reason", ""), "FieldValueInvalid")
        if reason == "FieldValueInvalid":
            return invalid(field_path, _type_name(value), message)
        return FieldError(field_path, reason, message)


def _all_rules(schema: Any) -> list[str]:
    """Every `x-kubernetes-validations` rule anywhere in a schema."""
    if isinstance(schema, list):
        return [r for item in schema for r in _all_rules(item)]
    if not isinstance(schema, dict):
        return []
    own = [r.get("rule", "") for r in schema.get("x-kubernetes-validations") or [] if isinstance(r, dict)]
    return own + [r for key, value in schema.items() if key != "x-kubernetes-validations" for r in _all_rules(value)]


def _correlate(items: list[Any], old: Any, schema: dict[str, Any]) -> list[Any]:
    """Old versions of list items: only map-type lists pair items (by their keys)."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(old, list):
        return [None] * len(items)
    by_key = {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
    return [by_key.get(tuple(i.get(k) for k in keys)) if isinstance(i, dict) else None for i in items]


def convert_error(error: ValidationError) -> list[FieldError]:
    """A jsonschema error in the words of kube-openapi's validator."""
    path = ""
    for part in error.absolute_path:
        path = join(path, part)
    where = path or "<root>"
    kind, bound, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [p for p in bound if isinstance(value, dict) and p not in value]
        return [required(join(path, p)) for p in missing]
    if kind == "type":
        types = bound if isinstance(bound, list) else [bound]
        expected = ",".join(t for t in types if t != "null")
        actual = _type_name(value)
        return [invalid(path, actual, f'{where} in body must be of type {expected}: "{actual}"')]
    if kind == "enum":
        allowed = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in bound if v is not None)
        return [FieldError(path, "FieldValueNotSupported", f"supported values: {allowed}", value, True)]
    details = {
        "maximum": f"should be less than or equal to {bound}",
        "exclusiveMaximum": f"should be less than {bound}",
        "minimum": f"should be greater than or equal to {bound}",
        "exclusiveMinimum": f"should be greater than {bound}",
        "pattern": f"should match '{bound}'",
        "minLength": f"should be at least {bound} chars long",
        "minItems": f"should have at least {bound} items",
        "multipleOf": f"should be a multiple of {bound}",
        "minProperties": f"should have at least {bound} properties",
    }
    if kind in details:
        return [invalid(path, value, f"{where} in body {details[kind]}")]
    if kind == "maxLength":
        return [FieldError(path, "FieldValueTooLong", f"may not be more than {bound} bytes")]
    if kind in ("maxItems", "maxProperties"):
        return [FieldError(path, "FieldValueTooMany", f"must have at most {bound} items", len(value), True)]
    if kind == "uniqueItems":
        return [FieldError(path, "FieldValueDuplicate", "", value, True)]
    if kind == "not":
        return [forbidden(path, f"{where} in body must not validate the schema (not)")]
    return [invalid(path, value, f"{where} in body {error.message}")]
