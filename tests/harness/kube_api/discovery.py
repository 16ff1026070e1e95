"""Discovery documents: /version, /api, /apis, /apis/<g>[/<v>], and a minimal OpenAPI v3.

Only legacy (unaggregated) discovery is served: kubectl asks for the aggregated form
first and falls back when the answer is plain `application/json`.

The OpenAPI v3 documents carry, per resource, a PATCH operation with the `fieldValidation`
parameter (so kubectl leaves validation to the server instead of downloading OpenAPI v2)
and, for custom resources, the CRD schema as a component (for `kubectl explain`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import weakref
from typing import Any

from .resources import Registry, ResourceType

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-e2gan-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()[:8]).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": _hash(f"{rt.group}/{rt.version}/{rt.kind}"),
    }
    if rt.group:
        entry["group"] = rt.group
        entry["version"] = rt.version
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entries = [entry]
    if rt.status_subresource:
        entries.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    return entries


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = [e for rt in sorted(types, key=lambda t: t.plural) for e in _resource_entries(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


# --- OpenAPI v3 ---------------------------------------------------------------------------


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_gv(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
             "description": "Ignore, Warn or Strict: how the server treats unknown and duplicate fields."}
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        scope = "namespaces/{namespace}/" if rt.namespaced else ""
        prefix = f"/{_gv_path(group, version)}/{scope}{rt.plural}"
        operation = {
            "operationId": f"patch{rt.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [param],
            "responses": {"200": {"description": "OK"}},
        }
        paths[prefix + "/{name}"] = {"parameters": [param], "patch": operation}
        if rt.schema is not None:
            reverse = ".".join(reversed(rt.group.split(".")))
            schemas[f"{reverse}.{rt.version}.{rt.kind}"] = {
                **rt.schema.schema, "x-kubernetes-group-version-kind": [gvk],
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


_ROOTS: weakref.WeakKeyDictionary[Registry, tuple[int, dict[str, Any]]] = weakref.WeakKeyDictionary()


def openapi_root(registry: Registry) -> dict[str, Any]:
    cached = _ROOTS.get(registry)
    if cached is not None and cached[0] == registry.revision:
        return cached[1]
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = openapi_gv(registry, group, version)
            path = _gv_path(group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    _ROOTS[registry] = (registry.revision, {"paths": paths})
    return {"paths": paths}
