"""A small RBAC evaluator: does a set of rendered (Cluster)Roles and bindings allow a request?

It follows the Kubernetes authorizer for resource requests: a RoleBinding grants its
role's rules in its own namespace, a ClusterRoleBinding grants a ClusterRole's rules in
every namespace and on cluster-scoped resources; `*` matches anything in a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    """One resource request as the authorizer sees it."""

    verb: str
    group: str
    resource: str
    namespace: str = ""  # "" for cluster-scoped resources and all-namespace lists/watches
    subresource: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {self.group or 'core'}/{res}{where}"


def _match(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def rule_allows(rule: dict[str, Any], request: Request) -> bool:
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    return (
        _match(rule.get("apiGroups", []), request.group)
        and _match(rule.get("resources", []), resource)
        and _match(rule.get("verbs", []), request.verb)
    )


def _bound_to(binding: dict[str, Any], service_account: str, sa_namespace: str) -> bool:
    return any(
        s.get("kind") == "ServiceAccount" and s.get("name") == service_account and s.get("namespace") == sa_namespace
        for s in binding.get("subjects", [])
    )


def allowed(docs: list[dict[str, Any]], service_account: str, sa_namespace: str, request: Request) -> bool:
    """Whether the ServiceAccount may make the request, given the rendered manifests."""
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or not _bound_to(
            binding, service_account, sa_namespace
        ):
            continue
        ref = binding["roleRef"]
        if binding["kind"] == "RoleBinding":
            if binding["metadata"]["namespace"] != request.namespace:
                continue
            key = (ref["kind"], binding["metadata"]["namespace"] if ref["kind"] == "Role" else "", ref["name"])
        else:
            key = ("ClusterRole", "", ref["name"])
        role = roles.get(key)
        if role and any(rule_allows(rule, request) for rule in role.get("rules", [])):
            return True
    return False


def granted(docs: list[dict[str, Any]], service_account: str, sa_namespace: str) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) some role bound to the ServiceAccount grants."""
    names = set()
    for binding in docs:
        if binding["kind"] in ("RoleBinding", "ClusterRoleBinding") and _bound_to(
            binding, service_account, sa_namespace
        ):
            names.add((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
    out = set()
    for role in docs:
        if role["kind"] in ("Role", "ClusterRole") and (role["kind"], role["metadata"]["name"]) in names:
            for rule in role.get("rules", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        for verb in rule.get("verbs", []):
                            out.add((group, resource, verb))
    return out


def request_from_http(method: str, path: str, query: dict[str, str], namespaced: dict[tuple[str, str], bool]) -> Request | None:
    """The authorizer's view of an HTTP request to the API server; None for discovery (non-resource URLs).

    `namespaced` maps (group, plural) to whether the resource is namespaced.
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # /api/v1, /apis/GROUP/VERSION: discovery
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and namespaced.get((group, rest[2]), True):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        if watch_path or query.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = "get" if name else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
        if method == "DELETE":
            verb = "delete" if name else "deletecollection"
    return Request(verb, group, resource, namespace, subresource)
