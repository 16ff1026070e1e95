"""RBAC in the emulated API server: service-account tokens are authorized against stored Roles."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def call(api: KubeApi, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"
        if method == "PATCH" else "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def admin(api: KubeApi, path: str, body: dict[str, Any]) -> None:
    status, _, answer = api.request("POST", path, body)
    assert status == 201, answer


def grant(api: KubeApi, namespace: str | None, rules: list[dict[str, Any]], subject: dict[str, Any]) -> None:
    """A Role and RoleBinding in `namespace`, or a ClusterRole and ClusterRoleBinding when None."""
    name = f"r-{uuid.uuid4().hex[:8]}"
    role, binding = ("Role", "RoleBinding") if namespace else ("ClusterRole", "ClusterRoleBinding")
    where = f"/namespaces/{namespace}" if namespace else ""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    admin(api, f"{RBAC}{where}/{role.lower()}s", {"kind": role, "metadata": meta, "rules": rules})
    admin(api, f"{RBAC}{where}/{binding.lower()}s", {
        "kind": binding, "metadata": meta, "subjects": [subject],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name}})


@pytest.fixture
def other_namespace(kube_api: KubeApi) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:8]}"
    status, _, answer = kube_api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, answer
    yield name
    kube_api.request("DELETE", f"/api/v1/namespaces/{name}")


def test_a_service_account_without_bindings_is_forbidden_with_the_api_servers_words(
    kube_api: KubeApi, kube_namespace: str
) -> None:
    token = kube_api.server.service_account_token(kube_namespace, "robot")
    status, answer = call(kube_api, token, "GET", f"/api/v1/namespaces/{kube_namespace}/configmaps/settings")
    assert status == 403 and answer["reason"] == "Forbidden"
    assert answer["message"] == (
        f'configmaps "settings" is forbidden: User "system:serviceaccount:{kube_namespace}:robot" cannot get '
        f'resource "configmaps" in API group "" in the namespace "{kube_namespace}"')
    status, _ = call(kube_api, token, "GET", "/api/v1")  # discovery stays open
    assert status == 200
    assert call(kube_api, "not-a-token", "GET", "/api/v1/namespaces")[0] == 401


def test_a_role_grants_in_its_namespace_only(kube_api: KubeApi, kube_namespace: str, other_namespace: str) -> None:
    token = kube_api.server.service_account_token(kube_namespace, "reader")
    grant(kube_api, kube_namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create"]}],
          {"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace})
    here, there = f"/api/v1/namespaces/{kube_namespace}/configmaps", f"/api/v1/namespaces/{other_namespace}/configmaps"
    assert call(kube_api, token, "GET", here)[0] == 200
    assert call(kube_api, token, "POST", here, {"metadata": {"name": "made"}})[0] == 201
    assert call(kube_api, token, "GET", here + "/made")[0] == 403  # list is not get
    assert call(kube_api, token, "DELETE", here + "/made")[0] == 403
    assert call(kube_api, token, "GET", here + "?watch=true&timeoutSeconds=1")[0] == 403  # nor watch
    assert call(kube_api, token, "GET", there)[0] == 403
    status, answer = call(kube_api, token, "GET", "/api/v1/configmaps")  # all namespaces needs a ClusterRoleBinding
    assert status == 403 and answer["message"].endswith("at the cluster scope")


def test_cluster_roles_groups_subresources_and_resource_names(
    kube_api: KubeApi, kube_namespace: str, other_namespace: str
) -> None:
    token = kube_api.server.service_account_token(kube_namespace, "ops")
    # Every service account of the namespace, through its group, cluster-wide.
    grant(kube_api, None, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}],
          {"kind": "Group", "name": f"system:serviceaccounts:{kube_namespace}"})
    assert call(kube_api, token, "GET", "/api/v1/configmaps")[0] == 200
    assert call(kube_api, token, "GET", f"/api/v1/namespaces/{other_namespace}/configmaps")[0] == 200
    # A RoleBinding may reference a ClusterRole: its rules, in the binding's namespace only.
    grant(kube_api, kube_namespace, [
        {"apiGroups": [""], "resources": ["namespaces/status"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"], "resourceNames": ["allowed"]},
    ], {"kind": "User", "name": f"system:serviceaccount:{kube_namespace}:ops"})
    for name in ("allowed", "hidden"):
        status, _, _ = kube_api.request("POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", {"metadata": {"name": name}})
        assert status == 201
    assert call(kube_api, token, "GET", f"/api/v1/namespaces/{kube_namespace}/configmaps/allowed")[0] == 200
    assert call(kube_api, token, "GET", f"/api/v1/namespaces/{kube_namespace}/configmaps/hidden")[0] == 403


def test_a_subresource_rule_grants_the_subresource_only(kube_api: KubeApi, kube_namespace: str) -> None:
    token = kube_api.server.service_account_token(kube_namespace, "status-writer")
    grant(kube_api, None, [{"apiGroups": [""], "resources": ["namespaces/status"], "verbs": ["get"]}],
          {"kind": "ServiceAccount", "name": "status-writer", "namespace": kube_namespace})
    assert call(kube_api, token, "GET", f"/api/v1/namespaces/{kube_namespace}/status")[0] == 200
    status, answer = call(kube_api, token, "GET", f"/api/v1/namespaces/{kube_namespace}")
    assert status == 403 and 'cannot get resource "namespaces"' in answer["message"]


def test_an_aggregated_cluster_role_is_refused_loudly(kube_api: KubeApi, kube_namespace: str) -> None:
    name = f"agg-{uuid.uuid4().hex[:8]}"
    admin(kube_api, f"{RBAC}/clusterroles", {"kind": "ClusterRole", "metadata": {"name": name},
                                             "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}})
    admin(kube_api, f"{RBAC}/clusterrolebindings", {
        "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "agg", "namespace": kube_namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
    token = kube_api.server.service_account_token(kube_namespace, "agg")
    status, answer = call(kube_api, token, "GET", "/api/v1/configmaps")
    assert status == 500 and "aggregationRule" in answer["message"]


def test_owner_references_need_delete_and_block_owner_deletion_needs_the_owners_finalizers(
    kube_api: KubeApi, kube_namespace: str
) -> None:
    """OwnerReferencesPermissionEnforcement, as production API servers run it."""
    cms = f"/api/v1/namespaces/{kube_namespace}/configmaps"
    status, _, owner = kube_api.request("POST", cms, {"metadata": {"name": "owner"}})
    assert status == 201

    def child(name: str, block: bool) -> dict[str, Any]:
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
               "controller": True, **({"blockOwnerDeletion": True} if block else {})}
        return {"metadata": {"name": name, "ownerReferences": [ref]}}

    token = kube_api.server.service_account_token(kube_namespace, "maker")
    subject = {"kind": "ServiceAccount", "name": "maker", "namespace": kube_namespace}
    grant(kube_api, kube_namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}], subject)
    status, answer = call(kube_api, token, "POST", cms, child("a", block=False))
    assert status == 403 and answer["message"].startswith(
        'configmaps "a" is forbidden: cannot set an ownerRef on a resource you can\'t delete: User ')
    assert call(kube_api, token, "POST", cms, {"metadata": {"name": "plain"}})[0] == 201  # no ownerRef: create suffices

    grant(kube_api, kube_namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete"]}], subject)
    assert call(kube_api, token, "POST", cms, child("b", block=False))[0] == 201
    status, answer = call(kube_api, token, "POST", cms, child("c", block=True))
    assert status == 403 and "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't " \
        f'set finalizers on: User "system:serviceaccount:{kube_namespace}:maker" cannot update resource ' \
        f'"configmaps/finalizers" in API group "" in the namespace "{kube_namespace}"' in answer["message"]

    grant(kube_api, kube_namespace, [{"apiGroups": [""], "resources": ["configmaps/finalizers"], "verbs": ["update"],
                                      "resourceNames": ["owner"]}], subject)
    assert call(kube_api, token, "POST", cms, child("c", block=True))[0] == 201
