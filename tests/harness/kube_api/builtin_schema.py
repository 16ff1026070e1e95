"""Built-in kinds checked against Kubernetes' own schemas (shipped by `kubernetes-validate`).

A real server decodes built-in kinds into Go structs: unknown fields are dropped (a
warning, or a 400 under `fieldValidation=Strict`, which kubectl sends), wrong types and
missing required fields are refused. The same here, so a typo in a chart's manifest fails
as it would on a cluster. CRDs themselves are left to `crds` (KubeRay's are too large to
revalidate against JSONSchemaProps on every apply). Without `kubernetes-validate`, built-in
kinds are accepted unchecked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .errors import FieldError
from .schema import convert_error, join

KUBE_VERSION = "1.32"
_SKIPPED_KINDS = {"CustomResourceDefinition"}


@lru_cache(maxsize=64)
def _validator(kind: str, api_version: str) -> Any:
    try:
        import jsonschema
        from kubernetes_validate import utils
        from referencing import Registry, Resource
    except ImportError:
        return None
    versions = [v for v in utils.all_versions() if utils.major_minor(v) <= KUBE_VERSION]
    if not versions:
        return None
    folder = f"kubernetes-json-schema/v{versions[-1]}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", KUBE_VERSION)
    except (FileNotFoundError, utils.VersionNotSupportedError):
        return None
    definitions = _definitions(folder)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@lru_cache(maxsize=2)
def _definitions(folder: str) -> Any:
    from kubernetes_validate import utils

    return utils.schema_contents(f"{folder}/_definitions.json", KUBE_VERSION)


def check(obj: dict[str, Any]) -> tuple[list[str], list[FieldError]]:
    """Drop unknown fields from `obj` (returning their paths) and report schema violations."""
    kind, api_version = obj.get("kind", ""), obj.get("apiVersion", "")
    if kind in _SKIPPED_KINDS:
        return [], []
    validator = _validator(kind, api_version)
    if validator is None:
        return [], []
    unknown: list[tuple[dict[str, Any], str, str]] = []
    errors: list[FieldError] = []
    for error in validator.iter_errors(obj):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set((error.schema.get("properties") or {}).keys())
            path = ""
            for part in error.absolute_path:
                path = join(path, part)
            unknown.extend((error.instance, key, join(path, key)) for key in error.instance if key not in known)
        else:
            errors.extend(convert_error(error))
    for parent, key, _ in unknown:
        parent.pop(key, None)
    return [path for _, _, path in unknown], errors
