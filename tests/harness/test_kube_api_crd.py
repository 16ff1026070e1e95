"""CRDs on the emulated API server: discovery, schema pruning/defaulting/validation, CEL,
the status subresource and CRD deletion."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.harness.fixtures import wait_for

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

GROUP, VERSION, PLURAL = "harness.e2gan.dev", "v1", "widgets"


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name},
            "spec": {"concept": "sketch", **spec}}


def path(namespace: str, name: str = "", query: str = "") -> str:
    tail = f"/{name}" if name else ""
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}{tail}{query}"


@pytest.fixture
def custom(kube_client: Any, widget_crd: dict[str, Any]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


def test_applied_crd_is_served_and_discoverable(kube_api: KubeApi, widget_crd: dict[str, Any]) -> None:
    _, _, groups = kube_api.request("GET", "/apis")
    group = next(g for g in groups["groups"] if g["name"] == GROUP)
    assert group["preferredVersion"]["groupVersion"] == f"{GROUP}/{VERSION}"
    _, _, resources = kube_api.request("GET", f"/apis/{GROUP}/{VERSION}")
    by_name = {r["name"]: r for r in resources["resources"]}
    main = by_name[PLURAL]
    assert (main["kind"], main["singularName"], main["namespaced"]) == ("Widget", "widget", True)
    assert main["shortNames"] == ["wd"] and main["categories"] == ["e2gan"]
    assert {"create", "get", "list", "watch", "patch", "update", "delete"} <= set(main["verbs"])
    assert by_name[f"{PLURAL}/status"]["verbs"] == ["get", "patch", "update"]
    _, _, crd = kube_api.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.harness.e2gan.dev")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}


def test_defaults_generation_and_status_subresource(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    body = widget("w")
    body["spec"]["search"] = {}
    body["status"] = {"phase": "Ignored"}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    assert created["spec"]["mode"] == "fast" and created["spec"]["search"] == {"parallelTrials": 2}
    assert created["metadata"]["generation"] == 1 and "status" not in created

    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w",
                                                    {"spec": {"maxRank": 8}, "status": {"phase": "Nope"}})
    assert patched["metadata"]["generation"] == 2 and "status" not in patched
    status = custom.patch_namespaced_custom_object_status(GROUP, VERSION, kube_namespace, PLURAL, "w", {
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {"maxRank": 1}})
    assert status["status"]["phase"] == "Ready" and status["spec"]["maxRank"] == 8
    assert status["metadata"]["generation"] == 2


@pytest.mark.parametrize(("spec", "message"), [
    ({"concept": 7}, 'spec.concept: Invalid value: "integer": spec.concept in body must be of type string: "integer"'),
    ({"search": {"parallelTrials": 100}}, "spec.search.parallelTrials: Invalid value: 100: "
                                          "spec.search.parallelTrials in body should be less than or equal to 16"),
    ({"minRank": 0}, "spec.minRank: Invalid value: 0: spec.minRank in body should be greater than or equal to 1"),
    ({"mode": "slow"}, 'spec.mode: Unsupported value: "slow": supported values: "fast", "full"'),
    ({"concept": "x" * 64}, "spec.concept: Too long: may not be more than 63 bytes"),
    ({"minRank": 9, "maxRank": 8}, 'spec: Invalid value: "object": minRank must not exceed maxRank'),
])
def test_schema_refuses_bad_specs(custom: client.CustomObjectsApi, kube_namespace: str, spec: dict[str, Any],
                                  message: str) -> None:
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("bad", **spec))
    body = json.loads(refused.value.body)
    assert refused.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == f'Widget.{GROUP} "bad" is invalid: {message}'
    assert body["details"]["causes"][0]["field"] == message.split(":")[0]


def test_required_fields_and_names(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    body = widget("no-concept")
    del body["spec"]["concept"]
    with pytest.raises(ApiException) as missing:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    assert "spec.concept: Required value" in json.loads(missing.value.body)["message"]
    with pytest.raises(ApiException) as bad_name:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("Bad.Name-"))
    assert 'metadata.name: Invalid value: "Bad.Name-"' in json.loads(bad_name.value.body)["message"]


def test_unknown_fields_are_pruned_with_a_warning(kube_api: KubeApi, widget_crd: dict[str, Any],
                                                  kube_namespace: str) -> None:
    body = widget("pruned", bogus=1, extra={"free": {"form": [1, 2]}})
    body["topLevel"] = "dropped"
    status, headers, created = kube_api.request("POST", path(kube_namespace), body)
    assert status == 201
    assert created["spec"] == {"concept": "sketch", "mode": "fast", "extra": {"free": {"form": [1, 2]}}}
    assert "topLevel" not in created
    assert sorted(headers["warning"]) == ['299 - "unknown field \\"spec.bogus\\""',
                                          '299 - "unknown field \\"topLevel\\""']

    status, _, refused = kube_api.request("POST", path(kube_namespace, query="?fieldValidation=Strict"),
                                          widget("strict", bogus=1))
    assert status == 400 and refused["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "spec.bogus"' in refused["message"]


def test_duplicate_fields_warn_and_are_refused_under_strict_validation(kube_api: KubeApi, widget_crd: dict[str, Any],
                                                                       kube_namespace: str) -> None:
    # Raw bytes: json.dumps cannot repeat a key. The last value wins, as in encoding/json.
    def raw(name: str) -> bytes:
        return (b'{"apiVersion": "%s/%s", "kind": "Widget", "metadata": {"name": "%s", "name": "%s"},'
                b' "spec": {"concept": "a", "mode": "fast", "concept": "sketch"}}'
                % (GROUP.encode(), VERSION.encode(), name.encode(), name.encode()))

    status, headers, created = kube_api.request("POST", path(kube_namespace), raw("twice"))
    assert status == 201 and created["spec"]["concept"] == "sketch"
    assert sorted(headers["warning"]) == ['299 - "duplicate field \\"metadata.name\\""',
                                          '299 - "duplicate field \\"spec.concept\\""']
    status, _, refused = kube_api.request("POST", path(kube_namespace, query="?fieldValidation=Strict"), raw("strict"))
    assert status == 400 and refused["reason"] == "BadRequest"
    assert 'strict decoding error: duplicate field "metadata.name", duplicate field "spec.concept"' in refused["message"]
    patch = b'{"spec": {"minRank": 2, "minRank": 3}}'
    status, _, refused = kube_api.request("PATCH", path(kube_namespace, "twice", query="?fieldValidation=Strict"),
                                          patch, content_type="application/merge-patch+json")
    assert status == 400 and 'duplicate field "spec.minRank"' in refused["message"]
    status, _, patched = kube_api.request("PATCH", path(kube_namespace, "twice", query="?fieldValidation=Ignore"),
                                          patch, content_type="application/merge-patch+json")
    assert status == 200 and patched["spec"]["minRank"] == 3


def test_cel_transition_rule_keeps_a_field_immutable(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("fixed"))
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "fixed",
                                              {"spec": {"concept": "other"}})
    assert 'spec.concept: Invalid value: "string": concept is immutable' in json.loads(refused.value.body)["message"]
    changed = custom.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "fixed",
                                                    {"spec": {"minRank": 2}})
    assert changed["spec"]["minRank"] == 2


def test_custom_resource_write_rules(kube_api: KubeApi, custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("rules"))
    unconditional = copy.deepcopy(created)
    del unconditional["metadata"]["resourceVersion"]
    status, _, body = kube_api.request("PUT", path(kube_namespace, "rules"), unconditional)
    assert status == 422 and "metadata.resourceVersion" in body["message"]
    status, _, body = kube_api.request("PATCH", path(kube_namespace, "rules"), {"spec": {"minRank": 1}},
                                       "application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"

    replaced = copy.deepcopy(created)
    replaced["status"] = {"phase": "Put"}
    status, _, body = kube_api.request("PUT", path(kube_namespace, "rules") + "/status", replaced)
    assert status == 200 and body["status"] == {"phase": "Put"}
    status, _, body = kube_api.request("PUT", path(kube_namespace, "rules") + "/status", replaced)
    assert status == 409  # the resourceVersion it carried is stale now


def test_table_output_uses_printer_columns(kube_api: KubeApi, custom: client.CustomObjectsApi,
                                           kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL,
                                           widget("shown", search={"parallelTrials": 4}))
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, kube_namespace, PLURAL, "shown", {"status": {
        "phase": "Training", "conditions": [{"type": "Ready", "status": "False"}]}})
    _, _, table = kube_api.request("GET", path(kube_namespace),
                                   accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase", "Trials", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == ["shown", "Training", 4, "False"]
    assert table["rows"][0]["cells"][4].endswith("s")


def test_crd_deletion_waits_for_instances_then_unserves(kube_api: KubeApi, widget_crd: dict[str, Any],
                                                        kube_namespace: str) -> None:
    crd = copy.deepcopy(widget_crd)
    crd["metadata"]["name"] = f"gadgets.{GROUP}"
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{GROUP}"
    status, _, _ = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 201
    gadgets = f"/apis/{GROUP}/{VERSION}/namespaces/{kube_namespace}/gadgets"
    gadget = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gadget",
              "metadata": {"name": "g", "finalizers": ["example.dev/hold"]}, "spec": {"concept": "c"}}
    assert kube_api.request("POST", gadgets, gadget)[0] == 201

    status, _, deleting = kube_api.request("DELETE", crd_path)
    assert status == 200 and deleting["metadata"]["deletionTimestamp"]
    # The deletion controller marks the instances; the finalizer holds this one (and so the CRD).
    held = wait_for("the instance to be marked for deletion",
                    lambda: kube_api.request("GET", f"{gadgets}/g")[2]["metadata"].get("deletionTimestamp"))
    assert held and kube_api.request("GET", crd_path)[0] == 200
    assert kube_api.request("POST", gadgets, {**gadget, "metadata": {"name": "late"}})[0] == 405

    kube_api.request("PATCH", f"{gadgets}/g", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    wait_for("the CRD to go once its last instance went", lambda: kube_api.request("GET", crd_path)[0] == 404)
    assert kube_api.request("GET", gadgets)[0] == 404
    _, _, resources = kube_api.request("GET", f"/apis/{GROUP}/{VERSION}")
    assert "gadgets" not in {r["name"] for r in resources["resources"]}


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["metadata"].update(name="wrong.harness.e2gan.dev"), 'must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"]["versions"][0].pop("schema"), "schemas are required"),
    (lambda c: c["spec"]["versions"][0].update(storage=False), "exactly one version marked as storage version"),
])
def test_malformed_crds_are_refused(kube_api: KubeApi, widget_crd: dict[str, Any], change: Any, message: str) -> None:
    crd = copy.deepcopy(widget_crd)
    crd["metadata"]["name"] = f"others.{GROUP}"
    crd["spec"]["names"] = {"plural": "others", "kind": "Other"}
    change(crd)
    status, _, body = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 422 and message in body["message"]
