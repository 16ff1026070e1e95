"""The chart's rendered RBAC, read with the emulated API server's authorizer: does it allow a
request, what does it grant, and what did the operator's HTTP requests ask for?"""

from __future__ import annotations

from typing import Any

from tests.harness.kube_api.rbac import Attributes, Policy, User, rule_allows, verb_of

__all__ = ["Request", "allowed", "granted", "request_from_http", "rule_allows"]


# One resource request as the authorizer sees it (the emulator's own authorizer, tests/harness/kube_api/rbac.py).
Request = Attributes


def allowed(docs: list[dict[str, Any]], service_account: str, sa_namespace: str, request: Request) -> bool:
    """Whether the ServiceAccount may make the request, given the rendered manifests."""
    return Policy.of(docs).allows(User.service_account(sa_namespace, service_account), request)


def granted(docs: list[dict[str, Any]], service_account: str, sa_namespace: str) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) some role bound to the ServiceAccount grants."""
    rules = Policy.of(docs).rules_of(User.service_account(sa_namespace, service_account))
    return {(group, resource, verb) for rule in rules for group in rule.get("apiGroups", [])
            for resource in rule.get("resources", []) for verb in rule.get("verbs", [])}


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
    watching = method == "GET" and (watch_path or query.get("watch") in ("true", "1"))
    return Request(verb_of(method, name, watching), group, resource, subresource, namespace, name)
