"""CustomResourceDefinitions: their checks, their status, and the resource types they serve."""

from __future__ import annotations

from typing import Any

from .errors import FieldError, invalid, required
from .meta import now
from .resources import PrinterColumn, ResourceType
from .schema import StructuralSchema

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def build_types(crd: dict[str, Any]) -> tuple[list[ResourceType], str, list[FieldError]]:
    """The served versions as resource types, the storage version, and any errors in the CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    errors: list[FieldError] = []
    if not group:
        errors.append(required("spec.group"))
    elif "." not in group:
        errors.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        errors.append(required("spec.names.plural"))
    elif plural != plural.lower():
        errors.append(invalid("spec.names.plural", plural, "must be lowercase"))
    if not kind:
        errors.append(required("spec.names.kind"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(FieldError("spec.scope", "FieldValueNotSupported",
                                 'supported values: "Cluster", "Namespaced"', spec.get("scope"), True))
    name = crd.get("metadata", {}).get("name", "")
    if group and plural and name != f"{plural}.{group}":
        errors.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions:
        errors.append(required("spec.versions", "must have exactly one version marked as storage version"))
    storage = [v.get("name") for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        errors.append(invalid("spec.versions", len(storage), "must have exactly one version marked as storage version"))

    types: list[ResourceType] = []
    for n, version in enumerate(versions):
        where = f"spec.versions[{n}]"
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        if schema is None:
            errors.append(required(f"{where}.schema.openAPIV3Schema", "schemas are required"))
            continue
        try:
            structural = StructuralSchema.cached(schema)
        except ValueError as exc:
            errors.append(invalid(f"{where}.schema.openAPIV3Schema", "object", str(exc)))
            continue
        if not version.get("served", True):
            continue
        columns = tuple(
            PrinterColumn(c.get("name", ""), c.get("type", "string"), c.get("jsonPath", ""),
                          c.get("description", ""), int(c.get("priority", 0)), c.get("format", ""))
            for c in version.get("additionalPrinterColumns") or []
        )
        selectable = tuple(f.get("jsonPath", "").lstrip(".") for f in version.get("selectableFields") or [])
        types.append(ResourceType(
            group=group,
            version=version.get("name", ""),
            plural=plural,
            kind=kind,
            namespaced=spec.get("scope") == "Namespaced",
            singular=names.get("singular") or kind.lower(),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status_subresource="status" in (version.get("subresources") or {}),
            generation=True,
            printer_columns=columns,
            age_column=not columns,
            selectable_fields=selectable,
            custom=True,
            schema=structural,
        ))
    return types, (storage[0] if storage else ""), errors


def apply_defaults(crd: dict[str, Any]) -> None:
    spec = crd.setdefault("spec", {})
    spec.setdefault("conversion", {"strategy": "None"})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")


def status(crd: dict[str, Any], storage_version: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """What the CRD controllers would report once the names are accepted and established."""
    current = (previous or {}).get("status") or {}
    stored = list(current.get("storedVersions") or [])
    if storage_version and storage_version not in stored:
        stored.append(storage_version)
    at = now()
    conditions = current.get("conditions") or [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": at},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": at},
    ]
    return {"acceptedNames": dict(crd["spec"]["names"]), "conditions": conditions, "storedVersions": stored}
