"""Decoding the protobuf bodies `kubectl create <kind>` sends, for a few built-in kinds.

kubectl's generators (`kubectl create namespace|configmap|secret|serviceaccount|role|
rolebinding|clusterrole|clusterrolebinding`) post `application/vnd.kubernetes.protobuf`.
A body is `k8s\\x00` + runtime.Unknown{typeMeta, raw}; `raw` is the object's message,
decoded here with the field numbers of k8s.io/api's generated.proto. Other kinds get 415.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"

# message -> field number -> (JSON name, type, repeated); a type is a scalar or a message name.
Schema = dict[int, tuple[str, str, bool]]
MESSAGES: dict[str, Schema] = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "raw", False)},
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False), 2: ("generateName", "string", False), 3: ("namespace", "string", False),
        5: ("uid", "string", False), 6: ("resourceVersion", "string", False), 7: ("generation", "int", False),
        11: ("labels", "map:string", False), 12: ("annotations", "map:string", False),
        13: ("ownerReferences", "OwnerReference", True), 14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False), 3: ("name", "string", False), 4: ("uid", "string", False),
        5: ("apiVersion", "string", False), 6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "NamespaceSpec", False)},
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False), 2: ("data", "map:string", False),
        3: ("binaryData", "map:bytes", False), 4: ("immutable", "bool", False),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta", False), 2: ("data", "map:bytes", False), 3: ("type", "string", False),
        4: ("stringData", "map:string", False), 5: ("immutable", "bool", False),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False), 2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True), 4: ("automountServiceAccountToken", "bool", False),
    },
    "ObjectReference": {1: ("kind", "string", False), 2: ("namespace", "string", False), 3: ("name", "string", False)},
    "LocalObjectReference": {1: ("name", "string", False)},
    "PolicyRule": {
        1: ("verbs", "string", True), 2: ("apiGroups", "string", True), 3: ("resources", "string", True),
        4: ("resourceNames", "string", True), 5: ("nonResourceURLs", "string", True),
    },
    "Role": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "ClusterRole": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "Subject": {
        1: ("kind", "string", False), 2: ("apiGroup", "string", False), 3: ("name", "string", False),
        4: ("namespace", "string", False),
    },
    "RoleRef": {1: ("apiGroup", "string", False), 2: ("kind", "string", False), 3: ("name", "string", False)},
    "RoleBinding": {1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True), 3: ("roleRef", "RoleRef", False)},
    "ClusterRoleBinding": {
        1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True), 3: ("roleRef", "RoleRef", False),
    },
    "Time": {1: ("seconds", "int", False), 2: ("nanos", "int", False)},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field; length-delimited values stay bytes."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "raw":
        return value
    raise ValueError(f"unknown scalar {kind}")


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number not in schema:
            continue  # fields this table does not know (status, managedFields, ...) are dropped
        json_name, kind, repeated = schema[number]
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(raw)}
            out.setdefault(json_name, {})[entry.get(1, b"").decode()] = _scalar(kind[4:], entry.get(2, b""))
            continue
        value = decode_message(kind, raw) if kind in MESSAGES else _scalar(kind, raw)
        if kind == "Time":
            value = datetime.fromtimestamp(value.get("seconds", 0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if repeated:
            out.setdefault(json_name, []).append(value)
        else:
            out[json_name] = value
    if name in ("ObjectMeta", "Secret"):
        # gogo-protobuf writes empty strings that JSON's omitempty would leave out.
        out = {k: v for k, v in out.items() if v != ""}
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object, or 415 for kinds not in the table."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "the body of the request was in an unknown format - missing the k8s protobuf prefix")
    try:
        unknown = decode_message("Unknown", body[len(MAGIC):])
        type_meta = unknown.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        if kind not in MESSAGES or "metadata" not in MESSAGES[kind].get(1, ("",))[0]:
            raise ApiError(415, f"the body of the request was in an unknown format - protobuf {kind or 'object'} "
                                "is not decoded by this emulator; send application/json")
        obj = decode_message(kind, unknown.get("raw", b""))
    except (ValueError, UnicodeDecodeError, KeyError) as exc:
        raise ApiError(400, f"error decoding protobuf body: {exc}") from exc
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
