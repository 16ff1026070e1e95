"""What controllers would do after a deletion: garbage collection through ownerReferences
(background, foreground, orphan), namespace termination, and CRD instance cleanup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import crds
from .admission import CRDS, NAMESPACES
from .errors import ApiError
from .jsondata import clone
from .options import Options
from .storage import Key

if TYPE_CHECKING:
    from .cluster import Cluster

FOREGROUND = "foregroundDeletion"


def collect(cluster: Cluster, owner_uid: str) -> None:
    """Garbage-collect dependents whose owners are all gone."""
    for key, namespace, name in list(cluster.store.dependents.get(owner_uid, ())):
        obj = cluster.store.get(key, namespace, name)
        rt = cluster.type_for(key)
        if obj is None or rt is None:
            continue
        owners = [r.get("uid") for r in obj["metadata"].get("ownerReferences") or []]
        if any(uid != owner_uid and uid in cluster.store.uids for uid in owners):
            continue
        try:
            cluster.delete(rt, namespace, name, {"propagationPolicy": "Background"}, Options())
        except ApiError:
            pass


def finish_foreground(cluster: Cluster, owner_uid: str) -> None:
    """Release an owner deleted in the foreground once its last dependent is gone."""
    ref = cluster.store.uids.get(owner_uid)
    obj = cluster.store.get(*ref) if ref else None
    rt = cluster.type_for(ref[0]) if ref else None
    if obj is None or rt is None or cluster.store.dependents.get(owner_uid):
        return
    if FOREGROUND not in (obj["metadata"].get("finalizers") or []):
        return
    new = clone(obj)
    new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND]
    cluster.commit_update(rt, obj, new, "", Options())


def orphan(cluster: Cluster, owner_uid: str) -> None:
    for key, namespace, name in list(cluster.store.dependents.get(owner_uid, ())):
        obj, rt = cluster.store.get(key, namespace, name), cluster.type_for(key)
        if obj is None or rt is None:
            continue
        new = clone(obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        new["metadata"]["resourceVersion"] = str(cluster.store.next_rv())
        cluster.write(rt, "MODIFIED", new, obj)


def namespaced_keys(cluster: Cluster) -> set[Key]:
    return {rt.key for rt in cluster.registry.types() if rt.namespaced}


def purge_namespace(cluster: Cluster, namespace: str) -> None:
    for key in namespaced_keys(cluster):
        rt = cluster.type_for(key)
        for obj in list(cluster.store.items(key, namespace)) if rt else []:
            try:
                cluster.delete(rt, namespace, obj["metadata"]["name"], None, Options())
            except ApiError:
                pass
    finish_namespace(cluster, namespace)


def finish_namespace(cluster: Cluster, namespace: str) -> None:
    ns = cluster.store.get(NAMESPACES, "", namespace)
    if ns is None or not ns["metadata"].get("deletionTimestamp"):
        return
    if any(cluster.store.count(key, namespace) for key in namespaced_keys(cluster)):
        return
    rt = cluster.type_for(NAMESPACES)
    assert rt is not None
    final = clone(ns)
    final["metadata"]["resourceVersion"] = str(cluster.store.next_rv())
    cluster.remove(rt, final, ns)


def crd_key(crd: dict[str, Any]) -> Key:
    spec = crd.get("spec") or {}
    return (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))


def purge_crd_instances(cluster: Cluster, crd: dict[str, Any]) -> None:
    key = crd_key(crd)
    rt = cluster.type_for(key)
    for obj in list(cluster.store.items(key)) if rt else []:
        m = obj["metadata"]
        try:
            cluster.delete(rt, m.get("namespace", ""), m["name"], None, Options())
        except ApiError:
            pass
    finish_crd(cluster, crd["metadata"]["name"])


def finish_crd(cluster: Cluster, crd_name: str) -> None:
    crd = cluster.store.get(CRDS, "", crd_name)
    if crd is None or not crd["metadata"].get("deletionTimestamp") or cluster.store.count(crd_key(crd)):
        return
    if crds.CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
        return
    rt = cluster.type_for(CRDS)
    assert rt is not None
    new = clone(crd)
    new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != crds.CLEANUP_FINALIZER]
    cluster.commit_update(rt, crd, new, "", Options())
