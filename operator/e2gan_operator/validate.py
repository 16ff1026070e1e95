"""Validate a resource before anything is created: the same pydantic models as `e2gan distill`, plus
the checks only the operator can make (names that become RayJob names, catalogs the operator lets
this namespace publish to).

The CRD schema refuses most bad input at admission; this is the second line, for API servers
that skip CEL, objects stored before a CRD upgrade, and rules a schema cannot express.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from e2gan_api.spec import NAME_PATTERN, ConceptAdapterSpec, ConceptBaseSpec, first_error
from e2gan_operator.rayjob import ADAPTER, Trainer
from e2gan_operator.settings import CatalogPolicy

MODELS: dict[str, type[BaseModel]] = {"ConceptAdapter": ConceptAdapterSpec, "ConceptBase": ConceptBaseSpec}
_NAME = re.compile(NAME_PATTERN)
# s3://bucket[/prefix]: the characters are limited so the URI is safe in any shell, log line or
# object key; segments are checked one by one below ('..', '.', empty).
_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[A-Za-z0-9._/-]*)?$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class InvalidResource(ValueError):
    """The resource cannot be trained as it is; the message names the field and the fix."""


@dataclass(frozen=True)
class Valid:
    """A validated spec and the catalog it publishes to (the spec's, or the operator's default)."""

    model: BaseModel
    catalog: str


def _segments(path: str) -> list[str] | None:
    """The '/'-separated segments of a path, or None when one is '..', '.' or empty."""
    path = path[1:] if path.startswith("/") else path
    path = path[:-1] if path.endswith("/") else path  # one trailing '/' is fine
    parts = path.split("/") if path else []
    if any(p in ("", ".", "..") or not _SEGMENT.match(p) for p in parts):
        return None
    return parts


def check_catalog(uri: str, namespace: str, policy: CatalogPolicy) -> str:
    """The catalog URI normalised (no trailing '/'), or InvalidResource saying what this namespace may use."""
    shown = uri[:200]
    match = _S3.match(uri)
    if match:
        parts = _segments(match.group(2) or "")
        if parts is None:
            raise InvalidResource(
                f"catalog.uri: {shown!r} has a '..', '.' or empty segment; give s3://bucket/prefix with plain names"
            )
        normal = "/".join([f"s3://{match.group(1)}", *parts])
        allowed = policy.prefixes(namespace)
        if allowed is not None and not any(_under(normal, prefix) for prefix in allowed):
            listing = ", ".join(allowed) or "none"
            raise InvalidResource(
                f"catalog.uri: {shown!r} is not allowed in namespace {namespace}; use a catalog under: {listing}"
            )
        return normal
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if path.startswith("/") and policy.local_roots:
        parts = _segments(path)
        if parts is not None:
            normal = "/" + "/".join(parts)
            if any(_under(normal, posixpath.normpath(root)) for root in policy.local_roots):
                return normal
    raise InvalidResource(
        f"catalog.uri: {shown!r} is not usable from the Ray pods; give s3://bucket/prefix (letters, digits "
        "and . _ / - only, no '..')"
    )


def _under(uri: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return uri == prefix or uri.startswith(prefix + "/")


def validate(
    trainer: Trainer, body: dict[str, Any], policy: CatalogPolicy | None = None, sticky_catalog: str = ""
) -> Valid:
    """The validated spec and its catalog, or InvalidResource with a one-line message.

    `sticky_catalog` is the default catalog this resource was given before (status.catalogUri): a
    changed operator default must not move a resource's published versions."""
    policy = policy or CatalogPolicy()
    meta = body.get("metadata") or {}
    name = meta.get("name") or ""
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise InvalidResource(
            f"metadata.name: {str(name)[:80]!r} must be a DNS-1123 label (at most 63 lower-case letters, digits and '-')"
        )
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise InvalidResource("spec: missing; see `kubectl explain " + trainer.plural + ".spec`")
    try:
        model = MODELS[trainer.kind].model_validate(spec)
    except ValidationError as exc:
        raise InvalidResource(first_error(exc)) from None
    namespace = str(meta.get("namespace") or "")
    uri = model.catalog.uri  # type: ignore[attr-defined]
    if uri is None:
        uri = sticky_catalog or policy.default
        if not uri:
            raise InvalidResource(
                "catalog.uri: unset, and the operator has no default catalog; set spec.catalog.uri to "
                "s3://bucket/prefix, or configure the operator's defaultCatalog"
            )
    catalog = check_catalog(uri, namespace, policy)
    if trainer is ADAPTER and model.base.weights is not None and not model.base.weights.strip():  # type: ignore[attr-defined]
        raise InvalidResource("base.weights: empty; remove it or give the path or URI of a .safetensors file")
    return Valid(model, catalog)
