"""RBAC for the emulated API server: who is asking, and do the stored Roles allow it.

It follows Kubernetes' RBAC authorizer for resource requests:
- a RoleBinding grants its Role's (or a ClusterRole's) rules in its own namespace only;
- a ClusterRoleBinding grants a ClusterRole's rules everywhere, cluster-scoped resources and
  all-namespace lists and watches included;
- subjects are Users, Groups and ServiceAccounts (`system:serviceaccount:NS:NAME`, in the
  groups `system:serviceaccounts`, `system:serviceaccounts:NS` and `system:authenticated`);
- a rule matches on verbs, apiGroups, resources (`resource/subresource`, `*`, `*/sub`) and
  resourceNames (which never match create, list, watch or deletecollection).

Only users with a registered token are authorized; the admin token and anonymous requests
(kubectl sends no token over plain HTTP) act as `system:masters`. Discovery, OpenAPI and health
paths are open to every authenticated user, as `system:discovery` makes them on a real cluster.
A ClusterRole with an `aggregationRule` is refused loudly rather than half evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

RBAC_GROUP = "rbac.authorization.k8s.io"
_NEVER_BY_NAME = {"create", "list", "watch", "deletecollection"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


@dataclass(frozen=True)
class Attributes:
    """A resource request as the authorizer sees it."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""  # "" for cluster-scoped resources and all-namespace lists and watches
    name: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {self.group or 'core'}/{res}{where}"


def verb_of(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _match(values: Iterable[str], value: str) -> bool:
    values = list(values)
    return "*" in values or value in values


def rule_allows(rule: dict[str, Any], request: Attributes) -> bool:
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    resources = rule.get("resources") or []
    wildcard_sub = bool(request.subresource) and f"*/{request.subresource}" in resources
    names = rule.get("resourceNames") or []
    return (
        _match(rule.get("verbs") or [], request.verb)
        and _match(rule.get("apiGroups") or [], request.group)
        and (_match(resources, resource) or wildcard_sub)
        and (not names or (request.verb not in _NEVER_BY_NAME and request.name in names))
    )


def _subject_is(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


@dataclass
class Policy:
    """The RBAC objects in force: (Cluster)Roles by (kind, namespace, name), and the bindings."""

    roles: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, objects: Iterable[dict[str, Any]]) -> Policy:
        policy = cls()
        for obj in objects:
            kind, meta = obj.get("kind"), obj.get("metadata") or {}
            if kind in ("Role", "ClusterRole"):
                policy.roles[(kind, meta.get("namespace", "") if kind == "Role" else "", meta["name"])] = obj
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                policy.bindings.append(obj)
        return policy

    def _rules(self, binding: dict[str, Any]) -> list[dict[str, Any]]:
        ref = binding.get("roleRef") or {}
        namespace = (binding.get("metadata") or {}).get("namespace", "")
        key = (ref.get("kind", ""), namespace if ref.get("kind") == "Role" else "", ref.get("name", ""))
        role = self.roles.get(key)
        if role is None:
            return []  # a binding to a missing role grants nothing, as on a real cluster
        if role.get("aggregationRule"):
            raise ApiError(500, f"the emulator does not evaluate aggregationRule (ClusterRole {key[2]})")
        return list(role.get("rules") or [])

    def _bound(self, user: User) -> list[dict[str, Any]]:
        """The bindings naming `user` among their subjects."""
        return [b for b in self.bindings
                if any(_subject_is(s, user, (b.get("metadata") or {}).get("namespace", "")) for s in b.get("subjects") or [])]

    def rules_of(self, user: User) -> list[dict[str, Any]]:
        """Every rule granted to `user`, in whatever namespace."""
        return [rule for binding in self._bound(user) for rule in self._rules(binding)]

    def allows(self, user: User, request: Attributes) -> bool:
        for binding in self._bound(user):
            if binding.get("kind") == "RoleBinding" and (binding.get("metadata") or {}).get("namespace", "") != request.namespace:
                continue
            if any(rule_allows(rule, request) for rule in self._rules(binding)):
                return True
        return False


def forbidden(user: User, request: Attributes) -> ApiError:
    """The API server's 403, word for word."""
    gr = f"{request.resource}.{request.group}" if request.group else request.resource
    what = f"{gr} \"{request.name}\"" if request.name else gr
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    scope = f' in the namespace "{request.namespace}"' if request.namespace else " at the cluster scope"
    details: dict[str, Any] = {"kind": request.resource}
    if request.group:
        details["group"] = request.group
    if request.name:
        details["name"] = request.name
    return ApiError(403, f'{what} is forbidden: User "{user.name}" cannot {request.verb} resource "{resource}" '
                         f'in API group "{request.group}"{scope}', details=details)
