"""API machinery: create, read, update, patch and delete with the real server's semantics.

Server-managed metadata (uid, resourceVersion, generation, creationTimestamp), `/status`
as a separate subresource, finalizers and deletionTimestamp, and admission: name/label
syntax, the schema (the CRD's for custom resources, Kubernetes' for built-in kinds) and
kind-specific defaults (`admission`). What follows a removal (garbage collection,
namespace and CRD termination) is in `controllers`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from . import admission, builtin_schema, controllers, crds, ownerrefs, pod_security
from .errors import (
    STALE,
    ApiError,
    bad_request,
    conflict,
    forbidden,
    invalid,
    invalid_object,
    not_found,
)
from .errors import already_exists as exists_error
from .jsondata import clone
from .meta import generate_name, now, validate_metadata
from .options import Options, Result
from .patch import APPLY_PATCH, PATCH_TYPES, STRATEGIC_PATCH, apply_patch, parse_patch
from .resources import Registry, ResourceType
from .selectors import Predicate
from .storage import Key, Store

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PODS = ("", "pods")
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields")
_IMMUTABLE_FIELDS = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "generation")
FOREGROUND = controllers.FOREGROUND
NAMESPACES, CRDS = admission.NAMESPACES, admission.CRDS


class Cluster:
    def __init__(self, history_size: int = 10_000) -> None:
        self.store = Store(history_size)
        self.registry = Registry()
        self.pending_crd_types: dict[str, tuple[list[ResourceType], str]] = {}
        self.service_ips = 0
        self._bootstrap()

    def _bootstrap(self) -> None:
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        for name in SYSTEM_NAMESPACES:
            if self.store.get(NAMESPACES, "", name) is None:
                self.create(rt, "", {"metadata": {"name": name}}, Options())

    def reset(self) -> None:
        """Delete everything (ignoring finalizers), then recreate the system namespaces."""
        for key, bucket in list(self.store.buckets.items()):
            for by_name in list(bucket.objects.values()):
                for obj in list(by_name.values()):
                    self._write_removal(key, obj)
        self.registry.reset()
        self._bootstrap()

    # --- reading ------------------------------------------------------------------------

    def present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The stored object as the requested version shows it (no conversion, like `None`)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return self.present(rt, obj)

    def list(self, rt: ResourceType, namespace: str | None, match: Predicate | None,
             limit: int = 0, after: tuple[str, str] | None = None) -> tuple[list[dict[str, Any]], tuple[str, str] | None, int]:
        """Matching objects (a page of them when `limit`), the last key when more remain, how many remain."""
        items: list[dict[str, Any]] = []
        last: tuple[str, str] | None = None
        remaining = 0
        for obj in self.store.items(rt.key, namespace):
            m = obj["metadata"]
            if after is not None and (m.get("namespace", ""), m["name"]) <= after:
                continue
            if match is not None and not match(obj):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(self.present(rt, obj))
            last = (m.get("namespace", ""), m["name"])
        return items, (last if remaining else None), remaining

    # --- creating -----------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, options: Options) -> Result:
        obj = self._prepare_body(rt, body)
        m = obj["metadata"]
        if rt.namespaced:
            if m.get("namespace") and m["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            m["namespace"] = namespace
            self._require_namespace(namespace)
        else:
            m.pop("namespace", None)
        if rt.custom:
            self._require_crd_active(rt)
        for key in _SERVER_FIELDS:
            m.pop(key, None)
        if not m.get("name") and m.get("generateName"):
            m["name"] = generate_name(str(m["generateName"]))
        if rt.status_subresource:
            obj.pop("status", None)  # status is written through /status only
        warnings = self._admit(rt, obj, None, options)
        name = m["name"]
        if self.store.get(rt.key, namespace if rt.namespaced else "", name) is not None:
            raise exists_error(rt.group, rt.plural, name)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now()
        if rt.generation:
            m["generation"] = 1
        if not options.dry_run:
            m["resourceVersion"] = str(self.store.next_rv())
            self.write(rt, "ADDED", obj, None)
        return Result(201, self.present(rt, obj), warnings)

    def _prepare_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = clone(body)
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if api_version and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
            )
        obj = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": obj.pop("metadata", None) or {}, **obj}
        if not isinstance(obj["metadata"], dict):
            raise bad_request("metadata must be an object")
        return obj

    def _require_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, f"unable to create new content in namespace {namespace} because it is being terminated",
                           details={"name": namespace, "kind": "namespaces"})

    def _require_crd_active(self, rt: ResourceType) -> None:
        crd = self.store.get(CRDS, "", rt.group_resource)
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            raise ApiError(405, "create not allowed while custom resource definition is terminating")

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None,
               options: Options) -> list[str]:
        """Mutate and validate as admission would; returns warnings, raises 400/422."""
        errors = validate_metadata(obj["metadata"], rt.name_rule)
        if rt.schema is not None:
            pruned = rt.schema.prune(obj)
            rt.schema.apply_defaults(obj)
            schema_errors = rt.schema.validate(obj, old)
        else:
            pruned, schema_errors = builtin_schema.check(obj)
        # As the API server words them: unknown fields, then fields the request body repeats.
        problems = [f'unknown field "{p}"' for p in pruned] + [f'duplicate field "{p}"' for p in options.duplicate_fields]
        if problems and options.field_validation == "Strict":
            raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                              f"strict decoding error: {', '.join(problems)}")
        warnings = problems if options.field_validation != "Ignore" else []
        if not errors:
            errors.extend(schema_errors)
        hook = admission.HOOKS.get(rt.key)
        if hook is not None:
            errors.extend(hook(self, rt, obj, old))
        if errors:
            raise invalid_object(rt.group, rt.kind, obj["metadata"].get("name", ""), errors)
        if options.authorize is not None:
            ownerrefs.check(rt, obj, old, options.authorize, self.registry.types)
        if rt.key == PODS and old is None:
            warnings = warnings + self._pod_security(obj)
        return warnings

    def _pod_security(self, pod: dict[str, Any]) -> list[str]:
        """Pod Security Admission at the levels the Pod's namespace is labelled with: refuse or warn."""
        namespace = self.store.get(admission.NAMESPACES, "", pod["metadata"].get("namespace", ""))
        enforce, warn = pod_security.namespace_levels(namespace)
        found = pod_security.violations(pod.get("spec") or {}, enforce)
        if found:
            name = pod["metadata"].get("name", "")
            raise ApiError(403, f'pods "{name}" is forbidden: {pod_security.message(enforce, found)}')
        found = pod_security.violations(pod.get("spec") or {}, warn)
        return [f'would violate PodSecurity "{warn}:latest": ' + ", ".join(found)] if found else []

    # --- updating -----------------------------------------------------------------------

    def update(self, rt: ResourceType, namespace: str, name: str, body: Any, subresource: str,
               options: Options) -> Result:
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        new = self._prepare_body(rt, body)
        m = new["metadata"]
        if m.get("name", name) != name:
            raise bad_request(f"the name of the object ({m['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and m.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if not m.get("resourceVersion"):
            if rt.custom:
                raise invalid_object(rt.group, rt.kind, name, [
                    invalid("metadata.resourceVersion", 0, "must be specified for an update")])
            m["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.commit_update(rt, old, new, subresource, options)

    def patch(self, rt: ResourceType, namespace: str, name: str, content_type: str, raw: bytes,
              subresource: str, options: Options) -> Result:
        if content_type not in PATCH_TYPES or (content_type == STRATEGIC_PATCH and rt.custom):
            accepted = [t for t in PATCH_TYPES if not (rt.custom and t == STRATEGIC_PATCH)]
            raise ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(accepted))
        patch = parse_patch(content_type, raw)
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            if content_type == APPLY_PATCH and not subresource and isinstance(patch, dict):
                patch.setdefault("metadata", {})["name"] = name
                return self.create(rt, namespace, patch, options)
            raise not_found(rt.group, rt.plural, name)
        new = apply_patch(content_type, old, patch)
        if not isinstance(new.get("metadata"), dict):
            raise bad_request("metadata must be an object")
        if content_type == APPLY_PATCH:
            for key in ("apiVersion", "kind"):
                new[key] = old[key]
        new.setdefault("metadata", {}).setdefault("resourceVersion", old["metadata"]["resourceVersion"])
        return self.commit_update(rt, old, new, subresource, options)

    def commit_update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str,
                       options: Options) -> Result:
        om = old["metadata"]
        name = om["name"]
        if new["metadata"].get("resourceVersion") != om["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name, STALE)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if subresource == "status":
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status_subresource:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        m = new["metadata"]
        for key in _IMMUTABLE_FIELDS:
            if key in om:
                m[key] = om[key]
            else:
                m.pop(key, None)
        for key in ("selfLink", "managedFields"):
            m.pop(key, None)
        if om.get("deletionTimestamp"):
            added = set(m.get("finalizers") or []) - set(om.get("finalizers") or [])
            if added:
                raise invalid_object(rt.group, rt.kind, name, [
                    forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted, "
                              f"found new finalizers {sorted(added)}")])
        warnings = self._admit(rt, new, old, options)
        if new == old:
            return Result(200, self.present(rt, old), warnings)  # a no-op write changes nothing, not even the RV
        if rt.generation and _content(new, rt) != _content(old, rt):
            m["generation"] = int(om.get("generation", 1)) + 1
        if options.dry_run:
            return Result(200, self.present(rt, new), warnings)
        m["resourceVersion"] = str(self.store.next_rv())
        if m.get("deletionTimestamp") and not m.get("finalizers"):
            self.remove(rt, new, old)  # the last finalizer is gone: the deletion completes
        else:
            self.write(rt, "MODIFIED", new, old)
        return Result(200, self.present(rt, new), warnings)

    # --- deleting -----------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str, name: str, body: dict[str, Any] | None,
               options: Options) -> Result:
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        body = body or {}
        om = old["metadata"]
        pre = body.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != om["uid"]:
            raise conflict(rt.group, rt.plural, name,
                           f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {om['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != om["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name, (
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {om['resourceVersion']}"))
        policy = body.get("propagationPolicy") or ("Orphan" if body.get("orphanDependents") else "Background")
        finalizers = list(om.get("finalizers") or [])
        if policy == "Foreground" and self.store.dependents.get(om["uid"]) and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)  # held until the dependents are gone, as the GC does
        if rt.key == CRDS and self.store.count(controllers.crd_key(old)) and crds.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(crds.CLEANUP_FINALIZER)
        if rt.key == NAMESPACES or finalizers:
            if om.get("deletionTimestamp"):
                return Result(200, self.present(rt, old))
            new = clone(old)
            m = new["metadata"]
            m["deletionTimestamp"] = now()
            m["deletionGracePeriodSeconds"] = 0
            if finalizers:
                m["finalizers"] = finalizers
            if "generation" in m:
                m["generation"] += 1
            if rt.key == NAMESPACES:
                new.setdefault("status", {})["phase"] = "Terminating"
            if options.dry_run:
                return Result(200, self.present(rt, new))
            m["resourceVersion"] = str(self.store.next_rv())
            self.write(rt, "MODIFIED", new, old)
            if rt.key == NAMESPACES:
                self._later(controllers.purge_namespace, self, name)
            elif rt.key == CRDS:
                self._later(controllers.purge_crd_instances, self, new)
            if policy == "Foreground":
                controllers.collect(self, om["uid"])
            elif policy == "Orphan":
                controllers.orphan(self, om["uid"])
            return Result(200, self.present(rt, new))
        if options.dry_run:
            return Result(200, self.present(rt, old))
        final = clone(old)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.remove(rt, final, old, orphan=policy == "Orphan")
        if rt.custom or rt.plural in ("pods", "services"):
            return Result(200, self.present(rt, final))
        details = {"name": name, "kind": rt.plural, "uid": om["uid"]}
        if rt.group:
            details["group"] = rt.group
        return Result(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                            "details": details})

    def delete_collection(self, rt: ResourceType, namespace: str | None, match: Predicate | None,
                          body: dict[str, Any] | None, options: Options) -> list[dict[str, Any]]:
        deleted = []
        for obj in list(self.store.items(rt.key, namespace)):
            if match is None or match(obj):
                m = obj["metadata"]
                try:
                    result = self.delete(rt, m.get("namespace", ""), m["name"], body, options)
                except ApiError:
                    continue
                deleted.append(result.body if result.body.get("kind") != "Status" else obj)
        return deleted

    # --- storage, removal and its consequences ------------------------------------------

    def write(self, rt: ResourceType, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self.store.write(rt.key, event, obj, old)
        if rt.key == CRDS:
            types, storage = self.pending_crd_types.pop(obj["metadata"]["name"], ([], ""))
            if types:
                self.registry.register_crd(obj["metadata"]["name"], types, storage)

    def _write_removal(self, key: Key, obj: dict[str, Any]) -> None:
        final = clone(obj)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.write(key, "DELETED", final, obj)

    def remove(self, rt: ResourceType, final: dict[str, Any], old: dict[str, Any], orphan: bool = False) -> None:
        self.store.write(rt.key, "DELETED", final, old)
        m = final["metadata"]
        if rt.key == CRDS:
            self.registry.unregister_crd(m["name"])
        if orphan:
            controllers.orphan(self, m["uid"])
        else:
            self._later(controllers.collect, self, m["uid"])
        for owner in m.get("ownerReferences") or []:
            self._later(controllers.finish_foreground, self, owner.get("uid", ""))
        if rt.namespaced:
            self._later(controllers.finish_namespace, self, m.get("namespace", ""))
        if rt.custom:
            self._later(controllers.finish_crd, self, rt.group_resource)

    def type_for(self, key: Key) -> ResourceType | None:
        return self.registry.any_version(*key)

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn` soon after this request, as controllers would (now, without a loop)."""
        try:
            asyncio.get_running_loop().call_soon(fn, *args)
        except RuntimeError:
            fn(*args)


def _content(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """What `generation` counts: everything but metadata (and status, when it is a subresource)."""
    skip = {"metadata", "status"} if rt.status_subresource else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}
