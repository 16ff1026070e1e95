"""Kind-specific admission: the defaults and checks built-in controllers' admission adds."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import crds
from .errors import FieldError, invalid
from .resources import ResourceType
from .storage import Key

if TYPE_CHECKING:
    from .cluster import Cluster

Hook = Callable[["Cluster", ResourceType, dict[str, Any], dict[str, Any] | None], list[FieldError]]
NAMESPACES: Key = ("", "namespaces")
CRDS: Key = ("apiextensions.k8s.io", "customresourcedefinitions")


def _admit_namespace(
    cluster: Cluster, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    if old is None:
        obj["status"] = {"phase": "Active"}
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    return []


def _admit_secret(
    cluster: Cluster, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")
    errors = []
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(value or "", validate=True)
        except (ValueError, TypeError):
            errors.append(invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
    if old is not None and old.get("type") != obj.get("type"):
        errors.append(invalid("type", obj.get("type"), "field is immutable"))
    return errors


def _admit_service(
    cluster: Cluster, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if old is not None and (old.get("spec") or {}).get("clusterIP"):
        spec["clusterIP"] = old["spec"]["clusterIP"]
    elif spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        cluster.service_ips += 1
        n = cluster.service_ips
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
    return []


def _admit_pod(
    cluster: Cluster, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    if old is None:
        obj["status"] = {"phase": "Pending"}
    return []


def _admit_crd(
    cluster: Cluster, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    crds.apply_defaults(obj)
    types, storage, errors = crds.build_types(obj)
    if old is not None:
        for path, a, b in (
            ("spec.group", old["spec"].get("group"), obj["spec"].get("group")),
            ("spec.names.plural", old["spec"]["names"].get("plural"), obj["spec"]["names"].get("plural")),
            ("spec.scope", old["spec"].get("scope"), obj["spec"].get("scope")),
        ):
            if a != b:
                errors.append(invalid(path, b, "field is immutable"))
    if not errors:
        obj["status"] = crds.status(obj, storage, old)
        cluster.pending_crd_types[obj["metadata"]["name"]] = (types, storage)
    return errors


HOOKS: dict[Key, Hook] = {
    NAMESPACES: _admit_namespace,
    ("", "secrets"): _admit_secret,
    ("", "services"): _admit_service,
    ("", "pods"): _admit_pod,
    CRDS: _admit_crd,
}
