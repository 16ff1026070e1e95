"""The explicit lock mode, for S3 servers that ignore If-None-Match/If-Match (rclone serve s3).

Chosen only at `e2gan catalog init --guard lock` and recorded in catalog.json, so every writer
of that catalog uses it (a lock-mode writer and a conditional-mode writer never mix). Creates
and replaces of small objects run under a lock object holding a random token and an expiry:
a writer that finds it free writes its token, waits LOCK_SETTLE_S and reads it back to see who
won. Safe while a request takes less than the settle time; a dead holder blocks others for at
most LOCK_TTL_S. Version files are created by the holder of the version's claim only, so they
need no lock: a HEAD refuses a taken name.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from catalog.errors import CatalogError, ConflictError
from catalog.store import Exists, ObjectInfo, Store

LOCKS = "locks"
LOCK_TTL_S = 30.0
LOCK_SETTLE_S = 0.5  # a racing writer's PUT must land within this (0.15 s lost updates under load)
DEADLINE_S = 120.0


class LockGuard(Store):
    """`inner` with create/replace serialised by lock objects instead of server conditions."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # noqa: ANN204 - bucket, settings, client... of the inner store
        return getattr(self.inner, name)

    # Plain delegation.
    def uri_of(self, key: str) -> str:
        return self.inner.uri_of(key)

    def read(self, key: str) -> bytes | None:
        return self.inner.read(key)

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        return self.inner.read_tagged(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        return self.inner.iter_bytes(key, chunk)

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, data)

    def upload(self, key: str, path: Path) -> None:
        self.inner.upload(key, path)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def list_folders(self, prefix: str) -> list[str]:
        return self.inner.list_folders(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.inner.delete(keys)

    def now(self) -> float:
        return self.inner.now()

    def check_location(self) -> None:
        self.inner.check_location()

    def create_location(self) -> None:
        self.inner.create_location()

    def close(self) -> None:
        self.inner.close()

    # Guarded writes.
    def create(self, key: str, data: bytes) -> None:
        if self.inner.head(key) is not None:  # taken stays taken: no lock needed to say so
            raise Exists(f"{self.uri_of(key)} already exists")
        with _Held(self.inner, key):
            if self.inner.head(key) is not None:
                raise Exists(f"{self.uri_of(key)} already exists")
            self.inner.write(key, data)

    def create_in_claim(self, key: str, data: bytes) -> None:
        if self.inner.head(key) is not None:
            raise Exists(f"{self.uri_of(key)} already exists")
        self.inner.create(key, data)

    def create_file(self, key: str, path: Path) -> None:
        if self.inner.head(key) is not None:
            raise Exists(f"{self.uri_of(key)} already exists")
        self.inner.create_file(key, path)

    def replace(self, key: str, data: bytes, etag: str | None) -> None:
        with _Held(self.inner, key):
            found = self.inner.read_tagged(key)
            if (found[1] if found else None) != etag:
                raise ConflictError(f"{self.uri_of(key)} changed concurrently")
            self.inner.write(key, data)


class _Held:
    """Hold the lock object of `key` for the duration of a with-block."""

    def __init__(self, store: Store, key: str) -> None:
        self.store, self.lock, self.token = store, f"{LOCKS}/{key}.lock", uuid.uuid4().hex

    def _holds(self) -> bool:
        raw = self.store.read(self.lock)
        try:
            return raw is not None and json.loads(raw).get("token") == self.token
        except (ValueError, AttributeError):
            return False

    def __enter__(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            raw = self.store.read(self.lock)
            try:
                held = json.loads(raw) if raw is not None else None
            except ValueError:
                held = None
            if not isinstance(held, dict) or float(held.get("expires", 0)) < time.time():
                body = json.dumps({"token": self.token, "expires": time.time() + LOCK_TTL_S}).encode()
                self.store.write(self.lock, body)
                time.sleep(LOCK_SETTLE_S)
                if self._holds():
                    return
            time.sleep(random.uniform(0.02, 0.2))
        raise CatalogError(f"could not lock {self.store.uri_of(self.lock)} within {DEADLINE_S:.0f} s")

    def __exit__(self, *exc: object) -> None:
        try:
            if self._holds():
                self.store.delete([self.lock])
        except CatalogError:
            pass  # it expires
