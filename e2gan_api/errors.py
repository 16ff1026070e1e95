"""One line per refusal: the field, what is wrong with the value, and a value that works.

`first_error` turns the first error of a pydantic ValidationError into that line, e.g.
`data.keepFraction: 1.5 is above 1 — use a fraction like 0.4`. Messages are generic per
error type; EXAMPLES gives a good value where the field's default is not one (optional
fields) or where a few words explain the form.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

# Field path (camelCase, list indexes as `*`) → an example of a good value, as written in YAML.
EXAMPLES: dict[str, str] = {
    "concept": "pencil-sketch (a DNS label: lower-case letters, digits and '-')",
    "concepts.*.concept": "pencil-sketch (a DNS label: lower-case letters, digits and '-')",
    "prompt": "'turn the photo into a pencil sketch'",
    "concepts.*.prompt": "'turn the photo into a pencil sketch'",
    "data.keepFraction": "a fraction like 0.4",
    "data.source": "builtin://scenes, ./photos or s3://bucket/prefix",
    "data.clipModel": "/models/clip-vit-base-patch32",
    "data.pairsStore": "./pairs or s3://bucket/pairs",
    "base.name": "builtin",
    "base.weights": "/models/base.safetensors (the file `e2gan base` wrote)",
    "teacher.model": "/models/instruct-pix2pix (a diffusers pipeline folder)",
    "teacher.name": "pencil-sketch (see `e2gan teachers`)",
    "catalog.uri": "./adapter-catalog or s3://bucket/prefix",
    "resources.memoryPerWorker": "8Gi (a Kubernetes quantity)",
    "search.ranks": "[2, 4, 8]",
    "search.ranks.*": "4",
    "training.resolution": "64 (a multiple of 8)",
    "concepts": "[{concept: pencil-sketch, prompt: 'turn the photo into a pencil sketch'}]",
}

_TYPE_WORDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}
_EXPECTED = {
    "bool_type": "a boolean (true or false, without quotes)",
    "int_type": "an integer (digits, without quotes)",
    "int_from_float": "a whole number",
    "float_type": "a number (without quotes)",
    "string_type": "a string (put it in quotes)",
    "list_type": "a list",
    "dict_type": "a mapping of fields",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "literal_error": "one of the listed values",
    "finite_number": "a finite number",
}


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def show(value: Any, limit: int = 40) -> str:
    """A value as the user wrote it, on one line, escapes visible, cut to `limit` characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = _number(value)
    elif value is None:
        text = "null"
    else:
        try:
            text = json.dumps(value, ensure_ascii=True, default=str)
        except (TypeError, ValueError, RecursionError):
            text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> str:
    return next((word for t, word in _TYPE_WORDS.items() if type(value) is t), type(value).__name__)


def field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(to_camel(p) if isinstance(p, str) else str(p) for p in loc)


def _field_info(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> Any:
    """The FieldInfo at `loc` (list indexes skipped), or None."""
    info = None
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not isinstance(fields, dict):
            return None
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return None
        current = info.annotation
        args = getattr(current, "__args__", ())
        current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), current)
    return info


def example(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    key = ".".join("*" if isinstance(p, int) else to_camel(str(p)) for p in loc)
    if key in EXAMPLES:
        return EXAMPLES[key]
    info = _field_info(model, loc)
    if info is None or isinstance(loc[-1] if loc else None, int):
        return None
    default = info.get_default(call_default_factory=True) if not info.is_required() else None
    if default is None or isinstance(default, BaseModel):
        return None
    return show(default)


def _known_fields(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    info = _field_info(model, loc[:-1]) if len(loc) > 1 else None
    owner: Any = model if len(loc) <= 1 else (info.annotation if info is not None else None)
    args = getattr(owner, "__args__", ())
    owner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), owner)
    fields = getattr(owner, "model_fields", None)
    return [f.alias or to_camel(n) for n, f in fields.items()] if isinstance(fields, dict) else []


def describe(err: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    """One pydantic error as `field: problem — fix`."""
    loc = tuple(err.get("loc", ()))
    where = field_path(loc)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    good = example(model, loc)
    like = f" — use a value like {good}" if good else ""
    if good and good.startswith("a "):
        like = f" — use {good}"

    if kind == "extra_forbidden":
        import difflib

        if loc:  # the unknown key as written (snake_case too), its parents in camelCase
            where = ".".join(filter(None, [field_path(loc[:-1]), str(loc[-1])]))
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", _known_fields(model, loc), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else "remove it or check its spelling"
        return f"{where}: unknown field; {hint}"
    if kind == "missing":
        return f"{where}: required" + (f"; add it, for example {where.rsplit('.', 1)[-1]}: {good}" if good else "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = _number(next(iter(ctx.values()), ""))
        words = {
            "greater_than": f"must be above {bound}",
            "greater_than_equal": f"is below {bound}",
            "less_than": f"must be below {bound}",
            "less_than_equal": f"is above {bound}",
        }[kind]
        return f"{where}: {show(value)} {words}{like}"
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length")
        what = "characters" if kind == "string_too_long" else "items"
        size = len(value) if hasattr(value, "__len__") else "?"
        return f"{where}: {size} {what}, at most {limit} are allowed{like}"
    if kind in ("string_too_short", "too_short"):
        what = "characters" if kind == "string_too_short" else "items"
        if ctx.get("min_length") == 1:
            return f"{where}: is empty{like}"
        return f"{where}: needs at least {ctx.get('min_length')} {what}{like}"
    if kind == "string_pattern_mismatch":
        return f"{where}: {show(value)} is not in the expected form{like}"
    if kind == "literal_error":
        return f"{where}: {show(value)} is not one of {ctx.get('expected', '?')}"
    if kind == "int_from_float":
        return f"{where}: {show(value)} is not a whole number{like}"
    if kind == "finite_number":
        return f"{where}: {show(value)} is not a finite number{like}"
    if kind in _EXPECTED:
        if kind == "bool_type":
            like = ""  # "true or false" is the example
        return f"{where}: {show(value)} is {_kind(value)}, expected {_EXPECTED[kind]}{like}"
    msg = re.sub(r"^(Value|Assertion) error, ", "", str(err.get("msg", "")))
    if not where or re.match(r"^[a-z][A-Za-z]*(\.[a-zA-Z]+)+\b", msg):
        return msg  # a model rule whose message already names its fields
    return f"{where}: {msg}"


def first_error(exc: Exception, model: type[BaseModel] | None = None) -> str:
    """One line naming the field and the fix, from a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return " ".join(str(exc).split())
    found = errors()
    if not found:
        return " ".join(str(exc).split())
    if model is None:  # a ValidationError's title is its model's name
        from e2gan_api import spec

        candidate = getattr(spec, str(getattr(exc, "title", "")), None)
        model = candidate if isinstance(candidate, type) and issubclass(candidate, BaseModel) else None
    line = describe(found[0], model)
    if not found[0].get("loc") and line.startswith(": "):  # the whole document: no field to name
        line = "the spec" + line
    return " ".join(line.split())  # one line, whatever the message held
