"""The operator's reads and deletions in the catalog store, off the event loop.

The catalog package is synchronous (minio or local files); every call runs in a worker
thread so a slow store never stalls the watch streams. Progress comes from the object the
training job writes (`progress/<namespace>/<name>/<token>.json`, the token minted for one RayJob),
not from logs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from catalog import Catalog, CatalogError, IndexEntry, open_catalog

MAX_CACHED_SERIES = 20_000


@dataclass(frozen=True)
class Listed:
    """What the operator needs of an index entry (the series cache keeps these, not whole entries with
    their file lists: ten thousand entries in a few MB)."""

    concept: str
    version: str
    digest: str
    base_model_digest: str
    metrics: dict[str, Any]
    ranks: dict[str, int]
    owner: str | None
    catalog_uri: str | None

    @classmethod
    def of(cls, entry: IndexEntry) -> Listed:
        return cls(entry.concept, entry.version, entry.digest, entry.base_model_digest, dict(entry.metrics),
                   dict(entry.ranks), getattr(entry, "owner", None), getattr(entry, "catalog_uri", None))


class Catalogs:
    """Open catalogs by URI (one client each, reused) and call them in threads.

    `on_call(method)` is told of every call (the operator counts them as catalog requests)."""

    def __init__(self, on_call: Callable[[str], None] | None = None) -> None:
        self._open: dict[str, Catalog] = {}
        self._lock = threading.Lock()
        self._on_call = on_call
        # One read per series, shared by every check of it within its max age (see shared_versions).
        self._series: dict[tuple[str, str, str], tuple[float, list[Listed]]] = {}  # (uri, concept, base)
        self._reading: dict[tuple[str, str, str], asyncio.Future[list[Listed]]] = {}

    def _catalog(self, uri: str) -> Catalog:
        with self._lock:
            cat = self._open.get(uri)
            if cat is None:
                try:
                    cat = open_catalog(uri)
                except (ValueError, OSError) as exc:
                    raise CatalogError(f"catalog {uri}: {exc}") from exc
                self._open[uri] = cat
            return cat

    async def _call(self, uri: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._on_call is not None:
            self._on_call(method)

        def run() -> Any:
            try:
                return getattr(self._catalog(uri), method)(*args, **kwargs)
            except CatalogError:
                raise
            except Exception as exc:  # a store library's own errors (network, minio): one type for callers
                raise CatalogError(f"catalog {uri}: {type(exc).__name__}: {exc}") from exc

        return await asyncio.to_thread(run)

    async def read_progress(self, uri: str, key: str) -> dict[str, Any] | None:
        return await self._call(uri, "read_progress", key)

    async def versions(self, uri: str, concept: str) -> list[IndexEntry]:
        return await self._call(uri, "versions", concept)

    async def shared_versions(
        self, uri: str, concept: str, max_age: float, base_digest: str | None = None
    ) -> list[Listed]:
        """Versions of `concept` (of one base, when given) from a read at most `max_age` seconds old,
        shared by all callers. The catalog keeps one index per series, so this reads one series (a
        LIST and a GET with the base given; two LISTs more to find the bases without), never the
        whole catalog: cost grows with the resources checking, not with the catalog."""
        key = (uri, concept, base_digest or "")
        cached = self._series.get(key)
        if cached is not None and time.monotonic() - cached[0] <= max_age:
            return cached[1]
        reading = self._reading.get(key)
        if reading is None:  # the first caller reads; the others wait for the same read
            reading = self._reading[key] = asyncio.ensure_future(self._read_series(key))
        return await asyncio.shield(reading)

    async def _read_series(self, key: tuple[str, str, str]) -> list[Listed]:
        uri, concept, base_digest = key
        try:
            entries = [Listed.of(e) for e in await self._call(uri, "versions", concept, base_digest or None)]
            self._series[key] = (time.monotonic(), entries)
            if len(self._series) > MAX_CACHED_SERIES:  # bounded memory: forget the oldest reads
                for old in sorted(self._series, key=lambda k: self._series[k][0])[: len(self._series) // 2]:
                    del self._series[old]
            return entries
        finally:
            self._reading.pop(key, None)

    async def delete(
        self, uri: str, concept: str, version: str, base_digest: str | None, owner: str
    ) -> list[IndexEntry]:
        """Delete one version; the catalog refuses when its recorded owner is not `owner`."""
        return await self._call(uri, "delete", concept, version=version, base_digest=base_digest or None, owner=owner)

    def close(self) -> None:
        with self._lock:
            for cat in self._open.values():
                try:
                    cat.close()
                except Exception:  # closing is best effort at shutdown
                    pass
            self._open.clear()
