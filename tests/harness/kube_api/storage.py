"""Object storage by (group, plural), a global resourceVersion, and a bounded event history.

Everything runs on the server's event loop thread, so there are no locks. Stored dicts
are never mutated after `put` (writers store new dicts), so readers may share them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Key = tuple[str, str]  # (group, plural)
Ref = tuple[Key, str, str]  # (key, namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None  # the previous state, so selector watches can see objects leave


class Watcher(Protocol):
    def notify(self, event: Event) -> None: ...


@dataclass
class Bucket:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # ns -> name -> obj
    history: deque[Event] = field(default_factory=deque)
    # Watches resuming from a resourceVersion older than this get 410 Gone.
    compacted_rv: int = 0
    watchers: set[Watcher] = field(default_factory=set)
    count: int = 0


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self.history_size = history_size
        self.rv = 0
        self.buckets: dict[Key, Bucket] = {}
        self.uids: dict[str, Ref] = {}
        # owner uid -> dependents naming it in ownerReferences, for cascading deletion.
        self.dependents: dict[str, set[Ref]] = {}

    def bucket(self, key: Key) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        return bucket

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        return self.bucket(key).objects.get(namespace, {}).get(name)

    def items(self, key: Key, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Objects sorted by namespace then name, as the API server lists them."""
        objects = self.bucket(key).objects
        namespaces = [namespace] if namespace is not None else sorted(objects)
        for ns in namespaces:
            by_name = objects.get(ns, {})
            for name in sorted(by_name):
                yield by_name[name]

    def count(self, key: Key, namespace: str | None = None) -> int:
        bucket = self.bucket(key)
        if namespace is None:
            return bucket.count
        return len(bucket.objects.get(namespace, {}))

    def find_uid(self, uid: str) -> Ref | None:
        return self.uids.get(uid)

    def write(self, key: Key, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Store (or, for DELETED, drop) `obj`, whose resourceVersion the caller has set."""
        bucket = self.bucket(key)
        m = obj["metadata"]
        ns, name, uid = m.get("namespace", ""), m["name"], m["uid"]
        by_name = bucket.objects.setdefault(ns, {})
        if event_type == "DELETED":
            if by_name.pop(name, None) is not None:
                bucket.count -= 1
            if not by_name:
                bucket.objects.pop(ns, None)
            self.uids.pop(uid, None)
            self._index_owners((key, ns, name), old, None)
        else:
            if name not in by_name:
                bucket.count += 1
            by_name[name] = obj
            self.uids[uid] = (key, ns, name)
            self._index_owners((key, ns, name), old, obj)
        event = Event(int(m["resourceVersion"]), event_type, obj, old)
        bucket.history.append(event)
        if len(bucket.history) > self.history_size:
            bucket.compacted_rv = bucket.history.popleft().rv
        for watcher in list(bucket.watchers):
            watcher.notify(event)

    def _index_owners(self, ref: Ref, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        before = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        after = {r.get("uid") for r in (new or {}).get("metadata", {}).get("ownerReferences") or []}
        for uid in before - after:
            deps = self.dependents.get(uid)
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self.dependents[uid]
        for uid in after - before:
            if uid:
                self.dependents.setdefault(uid, set()).add(ref)

    def events_since(self, key: Key, rv: int) -> list[Event] | None:
        """Events after `rv`, oldest first; None when history no longer reaches back that far."""
        bucket = self.bucket(key)
        if rv < bucket.compacted_rv:
            return None
        later: list[Event] = []
        for event in reversed(bucket.history):
            if event.rv <= rv:
                break
            later.append(event)
        later.reverse()
        return later

    def subscribe(self, key: Key, watcher: Watcher) -> None:
        self.bucket(key).watchers.add(watcher)

    def unsubscribe(self, key: Key, watcher: Watcher) -> None:
        self.bucket(key).watchers.discard(watcher)
