"""Validate a resource before anything is created: the same pydantic models as `e2gan distill`, plus
the checks only the operator can make (names that become RayJob names, catalog URIs that mean
something inside the Ray pods).

The CRD schema refuses most bad input at admission; this is the second line, for API servers
that skip CEL, objects stored before a CRD upgrade, and rules a schema cannot express.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from e2gan_api.spec import NAME_PATTERN, ConceptAdapterSpec, ConceptBaseSpec, first_error
from e2gan_operator.rayjob import ADAPTER, Trainer

MODELS: dict[str, type[BaseModel]] = {"ConceptAdapter": ConceptAdapterSpec, "ConceptBase": ConceptBaseSpec}
_NAME = re.compile(NAME_PATTERN)
# In the pods a catalog is S3 or an absolute path on a shared volume; the characters are
# limited so the URI is safe in any shell, log line or object key.
_CATALOG = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?|(file://)?/[A-Za-z0-9._/-]*)$")


class InvalidResource(ValueError):
    """The resource cannot be trained as it is; the message names the field and the fix."""


def validate(trainer: Trainer, body: dict[str, Any]) -> BaseModel:
    """The validated spec model, or InvalidResource with a one-line message."""
    name = (body.get("metadata") or {}).get("name") or ""
    if len(name) > 63 or not _NAME.match(name):
        raise InvalidResource(
            f"metadata.name: {name[:80]!r} must be a DNS-1123 label (at most 63 lower-case letters, digits and '-')"
        )
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise InvalidResource("spec: missing; see `kubectl explain " + trainer.plural + ".spec`")
    try:
        model = MODELS[trainer.kind].model_validate(spec)
    except ValidationError as exc:
        raise InvalidResource(first_error(exc)) from None
    uri = model.catalog.uri  # type: ignore[attr-defined]
    if not _CATALOG.match(uri):
        raise InvalidResource(
            f"catalog.uri: {uri[:200]!r} is not usable from the Ray pods; give s3://bucket/prefix or an "
            "absolute path on a shared volume (letters, digits and . _ / - only)"
        )
    if trainer is ADAPTER and model.base.weights is not None and not model.base.weights.strip():  # type: ignore[attr-defined]
        raise InvalidResource("base.weights: empty; remove it or give the path or URI of a .safetensors file")
    return model
