"""PATCH bodies by Content-Type: JSON merge (RFC 7386), strategic merge, JSON patch (RFC 6902), apply.

Strategic merge has no Go type information here: lists merge by key when the field is a
known merge-strategy list (containers by name, conditions by type, ...) or when the patch
carries a `$setElementOrder/<field>` directive (kubectl emits one for every merge list it
changes); every other list is replaced, as the real server does for atomic lists.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError, bad_request
from .jsondata import YAMLError, clone, load_yaml

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, APPLY_PATCH)

# Merge keys of the built-in merge-strategy lists (patchStrategy:"merge" in the Go types).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",
}
# Lists of scalars merged as sets (patchStrategy:"merge" on []string).
MERGE_SCALAR_LISTS = {"finalizers"}
# Lists whose merge key depends on the element: ports by containerPort, service ports by port.
PORT_KEYS = ("containerPort", "port")


def parse_patch(content_type: str, raw: bytes) -> Any:
    try:
        if content_type == APPLY_PATCH:
            return load_yaml(raw)
        return json.loads(raw)
    except (ValueError, YAMLError) as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Return the patched copy of `target`; `target` itself is left untouched."""
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    if content_type == STRATEGIC_PATCH:
        return strategic_merge(clone(target), patch)
    if content_type == APPLY_PATCH:
        return apply_merge(clone(target), patch)
    return merge_patch(clone(target), patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def apply_merge(target: Any, config: Any) -> Any:
    """Server-side apply, simplified: the applied configuration is merged in; nothing is removed."""
    if not isinstance(config, dict) or not isinstance(target, dict):
        return clone(config)
    for key, value in config.items():
        target[key] = apply_merge(target.get(key), value)
    return target


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    if field_name in MERGE_KEYS:
        return MERGE_KEYS[field_name]
    if field_name == "ports":
        for key in PORT_KEYS:
            if all(isinstance(i, dict) and key in i for i in items):
                return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    deletions = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$deleteFromPrimitiveList/")}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, list):
            target[key] = _strategic_list(key, target.get(key), value, key in orders)
        elif isinstance(value, dict):
            target[key] = strategic_merge(target.get(key), value)
        else:
            target[key] = value
    for key, removed in deletions.items():
        if isinstance(target.get(key), list):
            target[key] = [v for v in target[key] if v not in removed]
    for key, order in orders.items():
        if isinstance(target.get(key), list):
            target[key] = _reorder(key, target[key], order)
    if isinstance(retain, list):
        for key in list(target):
            if key not in retain:
                del target[key]
    return target


def _strategic_list(field_name: str, current: Any, patch: list[Any], has_order: bool) -> list[Any]:
    current = current if isinstance(current, list) else []
    if field_name in MERGE_SCALAR_LISTS:
        return current + [v for v in patch if v not in current]
    merge_key = _merge_key(field_name, patch + current)
    if merge_key is None and has_order:
        merge_key = "name" if all(isinstance(i, dict) and "name" in i for i in patch) else None
    if merge_key is None:
        if patch and isinstance(patch[0], dict) and patch[0].get("$patch") == "replace":
            return [clone(i) for i in patch[1:]]
        if has_order and all(not isinstance(i, dict) for i in patch):
            return current + [v for v in patch if v not in current]
        return [clone(i) for i in patch]
    result = list(current)
    index = {item.get(merge_key): n for n, item in enumerate(result) if isinstance(item, dict)}
    deleted: set[Any] = set()
    for item in patch:
        if not isinstance(item, dict):
            continue
        key = item.get(merge_key)
        if item.get("$patch") == "delete":
            deleted.add(key)
        elif key in index:
            result[index[key]] = strategic_merge(result[index[key]], item)
        else:
            index[key] = len(result)
            result.append(strategic_merge({}, item))
    return [i for i in result if not (isinstance(i, dict) and i.get(merge_key) in deleted)]


def _reorder(field_name: str, items: list[Any], order: list[Any]) -> list[Any]:
    if not order:
        return items
    if not isinstance(order[0], dict):
        rank = {v: n for n, v in enumerate(order)}
        return sorted(items, key=lambda v: rank.get(v, len(rank)))
    key = next(iter(order[0]))
    rank = {o.get(key): n for n, o in enumerate(order)}
    return sorted(items, key=lambda i: rank.get(i.get(key) if isinstance(i, dict) else None, len(rank)))


# --- RFC 6902 -----------------------------------------------------------------------------


class PatchFailed(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(422, message, "Invalid")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchFailed(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, allow_end: bool = False) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise PatchFailed(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchFailed(f"array index {index} out of bounds in {path}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path)]
        else:
            raise PatchFailed(f"doc is missing path: {path}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path)]
    raise PatchFailed(f"doc is missing path: {path}")


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path))
    raise PatchFailed(f"unable to remove nonexistent key: {last}: missing value")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchFailed(f"replace operation does not apply: doc is missing key: {path}: missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, path)] = value
        else:
            parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchFailed(f"doc is missing path: {path}")
    return doc


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise bad_request("json patch must be a JSON array of operations")
    doc: Any = clone(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchFailed(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind == "test":
            actual = _get(doc, path)
            if actual != op.get("value"):
                raise PatchFailed(
                    f"the server rejected our request due to an error in our request: testing value {path} "
                    f"failed: test operation does not apply: is {json.dumps(actual)}, not "
                    f"{json.dumps(op.get('value'))}"
                )
        elif kind == "add":
            doc = _add(doc, path, clone(op.get("value")))
        elif kind == "replace":
            doc = _add(doc, path, clone(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            source = op.get("from", "")
            value = _remove(doc, source) if kind == "move" else clone(_get(doc, source))
            doc = _add(doc, path, value)
        else:
            raise PatchFailed(f"unexpected operation {kind!r}")
    if not isinstance(doc, dict):
        raise PatchFailed("the patched document is not an object")
    return doc
