"""Read a spec file: a bare spec, or a whole ConceptAdapter/ConceptBase manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec

SpecT = TypeVar("SpecT", bound=BaseModel)

KIND_MODELS: dict[str, type[BaseModel]] = {
    "ConceptAdapter": ConceptAdapterSpec,
    "ConceptBase": ConceptBaseSpec,
}


class SpecError(ValueError):
    """A spec that cannot be used; the message is one line naming the field and the fix."""


def spec_dict(document: object, kind: str) -> dict:
    """The spec mapping of a parsed YAML document (manifest or bare spec)."""
    if not isinstance(document, dict):
        raise SpecError("spec file: expected a YAML mapping at the top level")
    if "apiVersion" in document or "kind" in document:
        if document.get("kind") != kind:
            raise SpecError(f"kind: expected {kind}, found {document.get('kind')!r}")
        spec = document.get("spec")
        if not isinstance(spec, dict):
            raise SpecError("spec: the manifest has no spec mapping")
        return spec
    return document


def load_spec(path: str | Path, model: type[SpecT] = ConceptAdapterSpec) -> SpecT:  # type: ignore[assignment]
    """Parse and validate a spec file; raise SpecError with a one-line message."""
    from e2gan_api.spec import first_error

    kind = next(k for k, m in KIND_MODELS.items() if m is model)
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such spec file")
    try:
        document = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    try:
        spec = model.model_validate(spec_dict(document, kind))
    except SpecError:
        raise
    except ValueError as exc:
        raise SpecError(first_error(exc)) from exc
    return with_cli_catalog(spec)


def with_cli_catalog(spec: SpecT) -> SpecT:
    """The CLI's catalog (./adapter-catalog) where the spec names none (the operator fills its own default)."""
    from e2gan_api.spec import CLI_DEFAULT_CATALOG

    catalog = getattr(spec, "catalog", None)
    if catalog is not None and catalog.uri is None:
        catalog.uri = CLI_DEFAULT_CATALOG
    return spec
