"""The emulated API server driven by the official `kubernetes` client (and raw HTTP where
the client hides what a real server sends)."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.harness.kube_api import KubeApiServer, write_kubeconfig
from tests.harness.kube_api.resources import BUILTINS, ResourceType

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]


def cm(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}, **meta},
            "data": {"k": "v"}}


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def take(count: int, list_fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The first `count` events of a watch (or fewer, if the stream ends after 5 s)."""
    stream = watch.Watch()
    events = []
    for event in stream.stream(list_fn, *args, timeout_seconds=5, **kwargs):
        events.append(event)
        if len(events) == count:
            stream.stop()
            break
    return events


def test_create_sets_server_metadata_and_get_returns_it(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    created = v1.create_namespaced_config_map(kube_namespace, cm("one"))
    meta = created.metadata
    assert meta.uid and meta.resource_version.isdigit() and meta.creation_timestamp is not None
    assert meta.namespace == kube_namespace
    fetched = v1.read_namespaced_config_map("one", kube_namespace)
    assert fetched.metadata.uid == meta.uid and fetched.data == {"k": "v"}

    generated = v1.create_namespaced_config_map(kube_namespace, cm("", generateName="gen-"))
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9


def test_errors_are_status_objects(kube_api: KubeApi, kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_config_map(kube_namespace, cm("dup"))
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_config_map(kube_namespace, cm("dup"))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_config_map("absent", kube_namespace)
    body = json.loads(missing.value.body)
    assert (missing.value.status, body["reason"], body["message"]) == (404, "NotFound", 'configmaps "absent" not found')
    with pytest.raises(ApiException) as bad_name:
        v1.create_namespaced_config_map(kube_namespace, cm("Not_A_Name"))
    body = json.loads(bad_name.value.body)
    assert bad_name.value.status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123 subdomain" in body["message"]
    with pytest.raises(ApiException) as no_namespace:
        v1.create_namespaced_config_map("no-such-namespace", cm("x"))
    assert no_namespace.value.status == 404
    status, _, body = kube_api.request("GET", "/apis/nothing.example/v1/things")
    assert status == 404 and body["kind"] == "Status"


def test_list_has_kind_and_resource_version_and_selectors(kube_api: KubeApi, kube_client: Any,
                                                          kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db", "env": "prod"}),
                         ("c", {"tier": "web"}), ("d", {})]:
        v1.create_namespaced_config_map(kube_namespace, cm(name, labels))

    def names(**kwargs: Any) -> list[str]:
        return [i.metadata.name for i in v1.list_namespaced_config_map(kube_namespace, **kwargs).items]

    assert names() == ["a", "b", "c", "d"]
    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier!=web") == ["b", "d"]
    assert names(label_selector="tier in (web,db),env") == ["a", "b"]
    assert names(label_selector="tier notin (db),!env") == ["c", "d"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier") == ["a", "c"]

    status, _, body = kube_api.request("GET", f"/api/v1/namespaces/{kube_namespace}/configmaps?limit=3")
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"].isdigit() and body["metadata"]["remainingItemCount"] == 1
    token = body["metadata"]["continue"]
    _, _, rest = kube_api.request("GET", f"/api/v1/namespaces/{kube_namespace}/configmaps?limit=3&continue={token}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["d"] and "continue" not in rest["metadata"]

    everywhere = v1.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={kube_namespace}")
    assert len(everywhere.items) == 4
    status, _, body = kube_api.request("GET", "/api/v1/configmaps?fieldSelector=data.k%3Dv")
    assert status == 400 and "field label not supported" in body["message"]


def test_watch_resumes_from_resource_version(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    first = v1.create_namespaced_config_map(kube_namespace, cm("before"))
    start = first.metadata.resource_version
    v1.create_namespaced_config_map(kube_namespace, cm("after"))
    v1.patch_namespaced_config_map("before", kube_namespace, {"data": {"k": "changed"}})
    v1.delete_namespaced_config_map("after", kube_namespace)

    seen = take(3, v1.list_namespaced_config_map, kube_namespace, resource_version=start)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [
        ("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]

    # Without a resourceVersion, a watch starts with the current state as ADDED events.
    seen = take(1, v1.list_namespaced_config_map, kube_namespace)
    assert [(e["type"], e["object"].data) for e in seen] == [("ADDED", {"k": "changed"})]


def test_watch_streams_live_events_with_selectors(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_config_map(kube_namespace, cm("mover", {"app": "x"}))
    start = v1.list_namespaced_config_map(kube_namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        events = take(3, v1.list_namespaced_config_map, kube_namespace, label_selector="app=y",
                      resource_version=start)
        seen.extend((e["type"], e["object"].metadata.name) for e in events)

    reader = threading.Thread(target=consume)
    reader.start()
    # No wait for the reader: its watch resumes from `start`, so it sees these events whenever it connects.
    writer = client.CoreV1Api(client.ApiClient(kube_client.configuration))
    writer.create_namespaced_config_map(kube_namespace, cm("other", {"app": "x"}))
    writer.patch_namespaced_config_map("mover", kube_namespace, {"metadata": {"labels": {"app": "y"}}})
    writer.patch_namespaced_config_map("mover", kube_namespace, {"data": {"k": "2"}})
    writer.patch_namespaced_config_map("mover", kube_namespace, {"metadata": {"labels": {"app": "z"}}})
    reader.join(timeout=10)
    # Entering the selection reads as ADDED and leaving it as DELETED, as on a real server.
    assert seen == [("ADDED", "mover"), ("MODIFIED", "mover"), ("DELETED", "mover")]


def test_watch_too_old_gone_and_bookmarks(tmp_path: Any) -> None:
    from tests.harness.fixtures import KubeApi

    with KubeApiServer(history_size=3, bookmark_interval=0.2) as server:
        api = KubeApi(server, write_kubeconfig(tmp_path / "kubeconfig", server.url, server.token), tmp_path)
        start = None
        for n in range(6):
            status, _, body = api.request("POST", "/api/v1/namespaces/default/configmaps", cm(f"c{n}"))
            assert status == 201
            start = start or body["metadata"]["resourceVersion"]
        status, _, text = api.request("GET", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={start}",
                                      raw=True)
        event = json.loads(text.splitlines()[0])
        assert status == 200 and event["type"] == "ERROR" and event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"

        latest = body["metadata"]["resourceVersion"]
        status, headers, text = api.request(
            "GET", f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={latest}"
                   "&allowWatchBookmarks=true&timeoutSeconds=1", raw=True)
        events = [json.loads(line) for line in text.splitlines()]
        assert headers["content-type"][0].startswith("application/json")
        assert events and all(e["type"] == "BOOKMARK" for e in events)
        assert events[0]["object"]["metadata"]["resourceVersion"] == latest

        # Initial-events streaming (kopf's `initial_streaming`) ends with an annotated bookmark.
        _, _, text = api.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
                                        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
                                   raw=True)
        events = [json.loads(line) for line in text.splitlines()]
        assert [e["type"] for e in events[:7]] == ["ADDED"] * 6 + ["BOOKMARK"]
        assert events[6]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}

        api.reset()
        status, _, body = api.request("GET", "/api/v1/namespaces/default/configmaps")
        assert body["items"] == []
        assert {n["metadata"]["name"] for n in api.request("GET", "/api/v1/namespaces")[2]["items"]} >= {"default"}


def test_patch_kinds(kube_api: KubeApi, kube_client: Any, kube_namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    deployment = {
        "metadata": {"name": "web", "labels": {"a": "1"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "x:1"}, {"name": "side", "image": "y:1"}]}}},
    }
    apps.create_namespaced_deployment(kube_namespace, deployment)
    path = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/web"

    # Strategic merge: containers merge by name.
    status, _, body = kube_api.request("PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "y:2"}]}}}}, "application/strategic-merge-patch+json")
    assert status == 200
    assert [(c["name"], c["image"]) for c in body["spec"]["template"]["spec"]["containers"]] == [
        ("main", "x:1"), ("side", "y:2")]
    # JSON merge: lists replace, null deletes.
    status, _, body = kube_api.request("PATCH", path, {"metadata": {"labels": {"a": None, "b": "2"}}, "spec": {
        "template": {"spec": {"containers": [{"name": "only", "image": "z"}]}}}}, "application/merge-patch+json")
    assert body["metadata"]["labels"] == {"b": "2"}
    assert [c["name"] for c in body["spec"]["template"]["spec"]["containers"]] == ["only"]
    # JSON patch, with a `test` that holds and one that fails (422, object untouched).
    rv = body["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/metadata/labels/c", "value": "3"}]
    status, _, body = kube_api.request("PATCH", path, ops, "application/json-patch+json")
    assert status == 200 and body["metadata"]["labels"] == {"b": "2", "c": "3"}
    status, _, failed = kube_api.request("PATCH", path, ops, "application/json-patch+json")
    assert status == 422 and failed["reason"] == "Invalid"
    assert apps.read_namespaced_deployment("web", kube_namespace).metadata.labels == {"b": "2", "c": "3"}
    # Server-side apply creates, then merges.
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    cm_path = f"/api/v1/namespaces/{kube_namespace}/configmaps/applied?fieldManager=test"
    status, _, _ = kube_api.request("PATCH", cm_path, applied, "application/apply-patch+yaml")
    assert status == 201
    applied["data"] = {"b": "2"}
    status, _, body = kube_api.request("PATCH", cm_path, applied, "application/apply-patch+yaml")
    assert status == 200 and body["data"] == {"a": "1", "b": "2"}
    status, _, _ = kube_api.request("PATCH", cm_path, {"data": {}}, "text/plain")
    assert status == 415


def test_generation_put_conflict_and_status_subresource(kube_api: KubeApi, kube_client: Any,
                                                         kube_namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    body = {"metadata": {"name": "gen"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 99}}
    created = apps.create_namespaced_deployment(kube_namespace, body)
    assert created.metadata.generation == 1 and created.status is None  # status is set via /status only

    labelled = apps.patch_namespaced_deployment("gen", kube_namespace, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("gen", kube_namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2

    # Writes to the main resource ignore .status; writes to /status change only .status.
    ignored = apps.patch_namespaced_deployment("gen", kube_namespace, {"status": {"replicas": 5}})
    assert ignored.status is None or ignored.status.replicas is None
    status = apps.patch_namespaced_deployment_status("gen", kube_namespace, {
        "status": {"replicas": 3}, "spec": {"replicas": 7}})
    assert status.status.replicas == 3 and status.spec.replicas == 3 and status.metadata.generation == 2

    # PUT: a stale resourceVersion is a 409 Conflict; the current one succeeds.
    stale = kube_client.sanitize_for_serialization(scaled)
    current = apps.read_namespaced_deployment("gen", kube_namespace)
    current.spec.replicas = 4
    replaced = apps.replace_namespaced_deployment("gen", kube_namespace, current)
    assert replaced.metadata.generation == 3
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)
    stale_path = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/gen"
    code, _, conflict = kube_api.request("PUT", stale_path, stale)
    assert code == 409 and conflict["reason"] == "Conflict"
    assert "the object has been modified" in conflict["message"]

    # A no-op patch changes nothing, not even the resourceVersion.
    again = apps.patch_namespaced_deployment("gen", kube_namespace, {"spec": {"replicas": 4}})
    assert again.metadata.resource_version == replaced.metadata.resource_version


def test_finalizers_hold_deletion_until_released(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_config_map(kube_namespace, cm("held", finalizers=["example.dev/hold"]))
    v1.delete_namespaced_config_map("held", kube_namespace)
    held = v1.read_namespaced_config_map("held", kube_namespace)
    assert held.metadata.deletion_timestamp is not None and held.metadata.deletion_grace_period_seconds == 0

    with pytest.raises(ApiException) as forbidden:
        v1.patch_namespaced_config_map("held", kube_namespace, {"metadata": {"finalizers": ["example.dev/hold", "new"]}})
    assert forbidden.value.status == 422

    released = v1.patch_namespaced_config_map("held", kube_namespace, {"metadata": {"finalizers": None}})
    assert released.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as gone:
        v1.read_namespaced_config_map("held", kube_namespace)
    assert gone.value.status == 404


def test_owner_references_cascade_in_background(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    owner = v1.create_namespaced_config_map(kube_namespace, cm("owner"))
    other = v1.create_namespaced_config_map(kube_namespace, cm("other-owner"))

    def ref(obj: Any) -> dict[str, str]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj.metadata.name, "uid": obj.metadata.uid}

    v1.create_namespaced_config_map(kube_namespace, cm("child", ownerReferences=[ref(owner)]))
    v1.create_namespaced_config_map(kube_namespace, cm("grandchild", ownerReferences=[
        {**ref(owner), "name": "child", "uid": v1.read_namespaced_config_map("child", kube_namespace).metadata.uid}]))
    v1.create_namespaced_config_map(kube_namespace, cm("shared", ownerReferences=[ref(owner), ref(other)]))
    v1.create_namespaced_secret(kube_namespace, {"metadata": {"name": "kept", "ownerReferences": [ref(owner)],
                                                              "finalizers": ["example.dev/hold"]}})

    v1.delete_namespaced_config_map("owner", kube_namespace)

    def remaining() -> set[str]:
        return {i.metadata.name for i in v1.list_namespaced_config_map(kube_namespace).items}

    wait_for(lambda: remaining() == {"other-owner", "shared"})
    kept = v1.read_namespaced_secret("kept", kube_namespace)
    assert kept.metadata.deletion_timestamp is not None  # cascaded, but held by its finalizer


def test_foreground_deletion_waits_for_dependents(kube_client: Any, kube_namespace: str) -> None:
    v1 = client.CoreV1Api(kube_client)
    owner = v1.create_namespaced_config_map(kube_namespace, cm("fg-owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner", "uid": owner.metadata.uid}
    v1.create_namespaced_config_map(kube_namespace, cm("fg-child", ownerReferences=[ref],
                                                       finalizers=["example.dev/hold"]))
    v1.delete_namespaced_config_map("fg-owner", kube_namespace, propagation_policy="Foreground")
    held = v1.read_namespaced_config_map("fg-owner", kube_namespace)
    assert held.metadata.finalizers == ["foregroundDeletion"] and held.metadata.deletion_timestamp
    assert v1.read_namespaced_config_map("fg-child", kube_namespace).metadata.deletion_timestamp
    v1.patch_namespaced_config_map("fg-child", kube_namespace, {"metadata": {"finalizers": None}})

    def owner_gone() -> bool:
        return "fg-owner" not in {i.metadata.name for i in v1.list_namespaced_config_map(kube_namespace).items}

    wait_for(owner_gone)


def test_namespace_deletion_removes_its_content(kube_client: Any) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespace({"metadata": {"name": "doomed"}})
    v1.create_namespaced_config_map("doomed", cm("inside"))
    v1.delete_namespace("doomed")
    wait_for(lambda: "doomed" not in {n.metadata.name for n in v1.list_namespace().items})
    assert v1.list_namespaced_config_map("doomed").items == []


MINIMAL_BODIES: dict[str, dict[str, Any]] = {
    "Deployment": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
    "Job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}},
    "Pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
    "Event": {"involvedObject": {"kind": "Pod", "name": "p"}},
    "RoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}},
    "ClusterRoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}},
    "NetworkPolicy": {"spec": {"podSelector": {}}},
}


@pytest.mark.parametrize("rt", [rt for rt in BUILTINS if rt.kind != "CustomResourceDefinition"],
                         ids=lambda rt: f"{rt.group or 'core'}/{rt.plural}")
def test_every_builtin_kind_round_trips(kube_api: KubeApi, kube_namespace: str, rt: ResourceType) -> None:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else "/api/v1"
    collection = f"{prefix}/namespaces/{kube_namespace}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    name = f"rt-{kube_namespace}"
    if rt.group == "events.k8s.io":
        body = {"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "t", "reportingInstance": "t",
                "action": "Test", "reason": "Test", "type": "Normal"}
    else:
        body = MINIMAL_BODIES.get(rt.kind, {})
    status, _, created = kube_api.request("POST", collection, {"apiVersion": rt.api_version, "kind": rt.kind,
                                                               "metadata": {"name": name}, **body})
    assert status == 201, created
    assert kube_api.request("GET", f"{collection}/{name}")[2]["metadata"]["uid"] == created["metadata"]["uid"]
    _, _, listed = kube_api.request("GET", f"{collection}?fieldSelector=metadata.name%3D{name}")
    assert listed["kind"] == f"{rt.kind}List" and len(listed["items"]) == 1
    status, _, _ = kube_api.request("DELETE", f"{collection}/{name}")
    assert status == 200


def test_builtin_kinds_are_checked_against_kubernetes_schemas(kube_api: KubeApi, kube_namespace: str) -> None:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate ships the built-in schemas")
    collection = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments"
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "typo"}, **MINIMAL_BODIES["Deployment"]}
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    status, _, refused = kube_api.request("POST", collection + "?fieldValidation=Strict", body)
    assert status == 400 and refused["message"].endswith(
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolcy"')
    status, headers, created = kube_api.request("POST", collection, body)
    assert status == 201 and "imagePullPolcy" not in created["spec"]["template"]["spec"]["containers"][0]
    assert headers["warning"] == ['299 - "unknown field \\"spec.template.spec.containers[0].imagePullPolcy\\""']
    status, _, invalid = kube_api.request("PATCH", f"{collection}/typo", {"spec": {"replicas": "three"}},
                                          "application/merge-patch+json")
    assert status == 422 and "spec.replicas in body must be of type integer" in invalid["message"]


def test_discovery_and_health(kube_api: KubeApi) -> None:
    _, _, version = kube_api.request("GET", "/version")
    assert version["major"] == "1"
    _, _, groups = kube_api.request("GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"} <= names
    _, _, core = kube_api.request("GET", "/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False and "pods/status" in by_name
    assert by_name["configmaps"]["shortNames"] == ["cm"]
    assert kube_api.request("GET", "/healthz")[2] == "ok"


def test_wrong_token_is_refused(kube_api: KubeApi) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(kube_api.url + "/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
