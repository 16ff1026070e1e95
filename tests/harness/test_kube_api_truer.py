"""The emulated API server refuses what a real one refuses (issue 12): CEL through a maintained
library, rules it cannot evaluate, `format: date-time`, duplicate list-map keys, oversized bodies."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.harness.kube_api.schema import StructuralSchema

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

SCHEMA: dict[str, Any] = yaml.safe_load("""
type: object
properties:
  spec:
    type: object
    properties:
      when: {type: string, format: date-time}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items: {type: object, required: [name], properties: {name: {type: string}, port: {type: integer}}}
      tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
      memory:
        type: string
        x-kubernetes-validations: [{rule: "quantity(self).compareTo(quantity('4Ti')) <= 0", message: too much}]
""")


def errors(obj: dict[str, Any]) -> list[str]:
    return [e.text() for e in StructuralSchema(SCHEMA).validate(obj)]


def test_date_time_list_map_keys_sets_and_quantities() -> None:
    assert errors({"spec": {"when": "2026-12-01T10:00:00Z", "ports": [{"name": "a"}, {"name": "b"}],
                            "tags": ["x", "y"], "memory": "4Ti"}}) == []
    assert errors({"spec": {"when": "yesterday"}}) == ['spec.when: Invalid value: "yesterday": spec.when in body '
                                                       "must be of type date-time: 'yesterday'"]
    assert errors({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}}) == [
        'spec.ports[1]: Duplicate value: "object"']
    assert errors({"spec": {"tags": ["x", "x"]}}) == ['spec.tags[1]: Duplicate value: "x"']
    assert errors({"spec": {"memory": "5Ti"}}) == ['spec.memory: Invalid value: "string": too much']


def test_a_rule_the_emulator_cannot_evaluate_refuses_the_crd() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"] = [{"rule": "url(self.when).getHost() == 'x'"}]
    with pytest.raises(ValueError, match="url"):
        StructuralSchema(schema)


def test_request_bodies_over_3_mib_are_refused(kube_api: KubeApi, kube_namespace: str) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "a" * (3 * 1024 * 1024)}}
    status, _, _ = kube_api.request("POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", big)
    assert status == 413
    small = {**big, "data": {"x": "a" * 1024}}
    assert kube_api.request("POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", small)[0] == 201
