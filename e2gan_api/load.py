"""Read a spec: a bare spec, or a whole ConceptAdapter/ConceptBase manifest, from YAML or JSON.

Every failure is a SpecError whose message is one line naming the file or field and the fix.
Inputs are capped before they can cost memory or recursion: at most 1 MiB, nesting at most
64 levels, at most 100 000 values once YAML aliases are expanded. Duplicate keys are refused
(YAML and JSON parsers silently keep the last one), and so is any top-level manifest field
beside apiVersion/kind/metadata/spec (and status, which the API server also accepts).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from e2gan_api.errors import first_error
from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec

SpecT = TypeVar("SpecT", bound=BaseModel)

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000
API_VERSION = "e2gan.dev/v1alpha1"
MANIFEST_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")

KIND_MODELS: dict[str, type[BaseModel]] = {
    "ConceptAdapter": ConceptAdapterSpec,
    "ConceptBase": ConceptBaseSpec,
}


class SpecError(ValueError):
    """A spec that cannot be used; the message is one line naming the field and the fix."""


# --- YAML ---------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and nesting deeper than MAX_DEPTH.

    The depth is checked while composing, before PyYAML's recursive composer and
    constructor could run out of stack; the expanded size of aliases before constructing.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels; a spec is a few levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        _check_expanded(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<:` merges override on purpose
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the base class refuses it with its own message
                if first is not None:
                    raise SpecError(f"line {line}: key {show_key(key)} given twice (first on line {first}); keep one")
                seen[key] = line
        return super().construct_mapping(node, deep)


def show_key(key: Any) -> str:
    return json.dumps(key, ensure_ascii=True, default=str)[:60]


def _check_expanded(root: Any) -> None:
    """Refuse alias bombs and recursive aliases: count values as if aliases were copied."""
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def walk(node: Any) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError(f"line {node.start_mark.line + 1}: a YAML alias refers to itself; write the value out")
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        active.add(key)
        count, depth = 1, 0
        for child in children:  # depth ≤ MAX_DEPTH here (checked while composing)
            c, d = walk(child)
            count, depth = count + c, max(depth, d)
        active.discard(key)
        sizes[key] = (count, depth + 1)
        if count > MAX_VALUES:
            raise SpecError(f"more than {MAX_VALUES} values once YAML aliases are expanded; write the spec out plainly")
        if depth + 1 > MAX_DEPTH:
            raise SpecError(f"nested deeper than {MAX_DEPTH} levels once YAML aliases are expanded")
        return sizes[key]

    walk(root)


def parse_yaml(data: bytes, name: str) -> Any:
    """The single YAML document in `data` (UTF-8), with the caps and duplicate-key check."""
    text = decode(data, name)
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except SpecError as exc:
        raise SpecError(f"{name}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise SpecError(f"{name}: not valid YAML ({where}{problem}); check the indentation and quoting") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # e.g. a timestamp with a month 13, an unhashable key
        detail = " ".join(str(exc).split())[:120]
        raise SpecError(f"{name}: not valid YAML ({type(exc).__name__}: {detail})") from None


def decode(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise SpecError(f"{name}: larger than 1 MiB; a spec is a few hundred bytes: is this the right file?")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {data[: exc.start].count(10) + 1}, "
            f"offset {exc.start}); save the file as UTF-8"
        ) from None


# --- JSON (the operator's --spec-json-b64) -------------------------------------------------


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError(f"key {show_key(key)} given twice; keep one")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise SpecError(f"{name} is not a JSON number; give a finite number")


def _depth(value: Any) -> int:
    """Nesting depth, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(data: bytes, name: str) -> Any:
    text = decode(data, name)
    try:
        document = json.loads(text, object_pairs_hook=_pairs_without_duplicates, parse_constant=_no_constant)
    except SpecError as exc:
        raise SpecError(f"{name}: {exc}") from None
    except RecursionError:
        raise SpecError(f"{name}: nested deeper than {MAX_DEPTH} levels; a spec is a few levels deep") from None
    except ValueError as exc:
        raise SpecError(f"{name}: not valid JSON ({' '.join(str(exc).split())[:120]})") from None
    if _depth(document) > MAX_DEPTH:
        raise SpecError(f"{name}: nested deeper than {MAX_DEPTH} levels; a spec is a few levels deep")
    return document


def decode_b64(text: str, name: str = "--spec-json-b64") -> bytes:
    if len(text) > MAX_BYTES * 4 // 3 + 4:
        raise SpecError(f"{name}: larger than 1 MiB; a spec is a few hundred bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SpecError(f"{name}: not base64; pass base64.b64encode(json.dumps(spec))") from None


# --- manifest or bare spec ------------------------------------------------------------------


def spec_dict(document: object, kind: str) -> dict:
    """The spec mapping of a parsed document (manifest or bare spec)."""
    if not isinstance(document, dict):
        found = "empty" if document is None else f"a {type(document).__name__}"
        raise SpecError(f"spec: expected a mapping of fields at the top level, found {found}; start with `concept:`"
                        if kind == "ConceptAdapter" else
                        f"spec: expected a mapping of fields at the top level, found {found}; start with `concepts:`")
    if "apiVersion" not in document and "kind" not in document:
        return document
    if document.get("kind") != kind:
        raise SpecError(f"kind: expected {kind}, found {show_key(document.get('kind'))}")
    if document.get("apiVersion", API_VERSION) != API_VERSION:
        raise SpecError(f"apiVersion: expected {API_VERSION}, found {show_key(document.get('apiVersion'))}")
    for key in document:
        if key not in MANIFEST_FIELDS:
            raise SpecError(
                f"{show_key(key).strip(chr(34))}: unknown top-level field; a manifest has apiVersion, kind, metadata "
                "and spec (did you mean to put it under spec?)"
            )
    if "metadata" in document and not isinstance(document["metadata"], dict):
        raise SpecError("metadata: expected a mapping, for example {name: pencil-sketch}")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise SpecError("spec: the manifest has no spec mapping; add `spec:` with concept and prompt")
    return spec


def validate(document: Any, model: type[SpecT]) -> SpecT:
    kind = next(k for k, m in KIND_MODELS.items() if m is model)
    spec = spec_dict(document, kind)
    try:  # wire names only (camelCase), as the CRD declares them; Python code may use either
        return model.model_validate(spec, by_name=False)
    except ValidationError as exc:
        raise SpecError(first_error(exc, model)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # a validator's own refusal
        raise SpecError(" ".join(str(exc).split())[:300]) from None


def read_capped(path: str | Path) -> bytes:
    """A spec file's bytes: a regular file of at most MAX_BYTES, refused otherwise."""
    p = Path(path)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise SpecError(f"{p}: no such spec file") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{p}: cannot read it ({exc.strerror if isinstance(exc, OSError) else exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(f"{p}: is a folder; give the spec YAML file (for example {p}/spec.yaml)")
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{p}: not a regular file (a device, pipe or socket); give a spec YAML file")
    if info.st_size > MAX_BYTES:
        raise SpecError(f"{p}: larger than 1 MiB; a spec is a few hundred bytes: is this the right file?")
    try:
        with open(p, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{p}: cannot read it ({exc.strerror}); check its permissions") from None


def load_spec_bytes(data: bytes, model: type[SpecT] = ConceptAdapterSpec, name: str = "spec") -> SpecT:  # type: ignore[assignment]
    """Parse (YAML; JSON is YAML here) and validate a spec's bytes."""
    return with_cli_catalog(validate(parse_yaml(data, name), model))


def load_spec_b64(text: str, model: type[SpecT] = ConceptAdapterSpec) -> SpecT:  # type: ignore[assignment]
    """The operator's form: base64 of the spec's JSON."""
    name = "--spec-json-b64"
    return with_cli_catalog(validate(parse_json(decode_b64(text, name), name), model))


def load_spec(path: str | Path, model: type[SpecT] = ConceptAdapterSpec) -> SpecT:  # type: ignore[assignment]
    """Parse and validate a spec file; raise SpecError with a one-line message."""
    return load_spec_bytes(read_capped(path), model, str(path))


def with_cli_catalog(spec: SpecT) -> SpecT:
    """The CLI's catalog (./adapter-catalog) where the spec names none (the operator fills its own default)."""
    from e2gan_api.spec import CLI_DEFAULT_CATALOG

    catalog = getattr(spec, "catalog", None)
    if catalog is not None and catalog.uri is None:
        catalog.uri = CLI_DEFAULT_CATALOG
    return spec
