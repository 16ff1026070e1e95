"""The emulator's pieces on their own: CEL, JSONPath, selectors, patches, schemas, protobuf."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.kube_api import cel, jsonpath, patch, protobuf
from tests.harness.kube_api.errors import ApiError
from tests.harness.kube_api.meta import human_duration
from tests.harness.kube_api.schema import StructuralSchema
from tests.harness.kube_api.selectors import parse_field_selector, parse_label_selector


@pytest.mark.parametrize(("rule", "env", "expected"), [
    ("self.minRank <= self.maxRank", {"self": {"minRank": 2, "maxRank": 8}}, True),
    ("self == oldSelf", {"self": "a", "oldSelf": "b"}, False),
    ("!has(self.x) || self.x > 0", {"self": {}}, True),
    ("self.items.all(i, i.size() <= 3) && size(self.items) == 2", {"self": {"items": ["ab", "abc"]}}, True),
    ("self.items.exists_one(i, i.startsWith('a'))", {"self": {"items": ["ab", "ac"]}}, False),
    ("self.m.filter(k, k.endsWith('x')).size() == 1", {"self": {"m": {"ax": 1, "b": 2}}}, True),
    ("'gpu' in self.tags ? self.n * 2 : -self.n", {"self": {"tags": ["cpu"], "n": 3}}, -3),
    ("self.n / 2 == -1 && self.n % 2 == -1", {"self": {"n": -3}}, True),
    ("self.name.matches('^[a-z]+$') && self.name.upperAscii() == 'AB'", {"self": {"name": "ab"}}, True),
    ("[1, 2].map(x, x * 10) == [10, 20] && {'a': 1}['a'] == 1", {"self": None}, True),
    ("self.error || true", {"self": {}}, True),  # `||` absorbs an error on either side
])
def test_cel_evaluates_rules(rule: str, env: dict[str, Any], expected: Any) -> None:
    assert cel.evaluate(cel.compile_rule(rule), env) == expected


def test_cel_errors_and_unsupported() -> None:
    with pytest.raises(cel.CelError, match="no such key: missing"):
        cel.evaluate(cel.compile_rule("self.missing > 1"), {"self": {}})
    with pytest.raises(cel.CelUnsupported):  # no library here implements it: refused, never skipped
        cel.compile_rule("url(self.t).getHost() == 'x'")
    assert cel.evaluate(cel.compile_rule("quantity(self).compareTo(quantity('4Ti')) <= 0"), {"self": "4097Gi"}) is False
    with pytest.raises(cel.CelUnsupported):
        cel.compile_rule("self.?x.orValue(1)")
    assert cel.references(cel.compile_rule("self.a == oldSelf.a"), "oldSelf")
    assert not cel.references(cel.compile_rule("self.a == 'oldSelf'"), "oldSelf")


def test_jsonpath_for_printer_columns() -> None:
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Done", "status": "False"}]},
           "metadata": {"labels": {"app.kubernetes.io/name": "x"}}, "spec": {"items": [1, 2, 3]}}
    assert jsonpath.find(obj, '.status.conditions[?(@.type=="Done")].status') == ["False"]
    assert jsonpath.find(obj, ".status.conditions[*].type") == ["Ready", "Done"]
    assert jsonpath.find(obj, ".metadata.labels['app.kubernetes.io/name']") == ["x"]
    assert jsonpath.find(obj, ".spec.items[-1]") == [3]
    assert jsonpath.find(obj, "{.spec.missing}") == []


def test_selectors() -> None:
    match = parse_label_selector("env in (prod, staging),tier!=db,!legacy,team")
    assert match is not None
    assert match({"metadata": {"labels": {"env": "prod", "tier": "web", "team": "a"}}})
    assert not match({"metadata": {"labels": {"env": "prod", "team": "a", "legacy": "1"}}})
    assert not match({"metadata": {"labels": {"env": "dev", "team": "a"}}})
    fields = parse_field_selector("metadata.name=a,status.phase!=Failed", {"metadata.name", "status.phase"})
    assert fields is not None and fields({"metadata": {"name": "a"}, "status": {"phase": "Running"}})
    with pytest.raises(ApiError) as refused:
        parse_field_selector("spec.secret=x", {"metadata.name"})
    assert refused.value.code == 400


def test_strategic_merge_directives() -> None:
    target = {"metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
              "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
                       "args": ["--x"], "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    body = {"metadata": {"finalizers": ["b"], "labels": {"x": None}},
            "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                     "containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "image": "2"}],
                     "args": ["--y"], "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    merged = patch.apply_patch(patch.STRATEGIC_PATCH, target, body)
    assert merged["metadata"] == {"finalizers": ["a", "b"], "labels": {}}
    assert [c["name"] for c in merged["spec"]["containers"]] == ["b", "c"]
    assert merged["spec"]["args"] == ["--y"] and merged["spec"]["strategy"] == {"type": "Recreate"}
    assert target["spec"]["containers"][0]["name"] == "a"  # the original is untouched


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "move", "from": "/c", "path": "/d"},
           {"op": "copy", "from": "/a/b", "path": "/e"}, {"op": "remove", "path": "/a/b/0"},
           {"op": "test", "path": "/d", "value": "x"}]
    assert patch.json_patch(doc, ops) == {"a": {"b": [2, 3]}, "d": "x", "e": [1, 2, 3]}
    for bad in ([{"op": "test", "path": "/c", "value": "y"}], [{"op": "remove", "path": "/nope"}],
                [{"op": "replace", "path": "/nope", "value": 1}]):
        with pytest.raises(ApiError) as failed:
            patch.json_patch(doc, bad)
        assert failed.value.code == 422


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "note": {"type": "string", "nullable": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {
                              "name": {"type": "string"},
                              "number": {"type": "integer",
                                         "x-kubernetes-validations": [{"rule": "self >= oldSelf",
                                                                       "message": "may only grow"}]}}}},
                "level": {"type": "string", "default": "info"},
            },
        },
    },
}


def test_structural_schema_extensions() -> None:
    schema = StructuralSchema(SCHEMA)
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "anything": 1},
           "spec": {"port": "http", "note": None, "labels": {"a": "b"}, "junk": 1,
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "free": {"x": 1}},
                    "ports": [{"name": "a", "number": 5, "extra": True}]}}
    assert sorted(schema.prune(obj)) == ["spec.junk", "spec.ports[0].extra"]
    schema.apply_defaults(obj)
    assert obj["spec"]["level"] == "info" and obj["metadata"]["anything"] == 1
    assert schema.validate(obj) == []

    bad = {**obj, "spec": {**obj["spec"], "port": True, "ratio": 0}}
    texts = [e.text() for e in schema.validate(bad)]
    assert 'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"' in texts
    assert "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0" in texts

    shrunk = {**obj, "spec": {**obj["spec"], "ports": [{"name": "a", "number": 4}, {"name": "b", "number": 1}]}}
    errors = schema.validate(shrunk, old=obj)
    assert [e.text() for e in errors] == ['spec.ports[0].number: Invalid value: "integer": may only grow']


def test_protobuf_bodies_decode() -> None:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    entry = field(1, b"a") + field(2, b"1")
    meta = field(1, b"cm") + field(3, b"") + field(11, field(1, b"k") + field(2, b"v"))
    config_map = field(1, meta) + field(2, entry)
    type_meta = field(1, b"v1") + field(2, b"ConfigMap")
    body = protobuf.MAGIC + field(1, type_meta) + field(2, config_map)
    assert protobuf.decode(body) == {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cm", "labels": {"k": "v"}}, "data": {"a": "1"}}
    with pytest.raises(ApiError) as refused:
        protobuf.decode(protobuf.MAGIC + field(1, field(1, b"apps/v1") + field(2, b"Deployment")))
    assert refused.value.code == 415


def test_human_durations() -> None:
    assert [human_duration(s) for s in (5, 150, 700, 3 * 3600 + 60, 30 * 3600, 3 * 86400, 30 * 86400)] == [
        "5s", "2m30s", "11m", "3h1m", "30h", "3d", "30d"]
