"""The storage interface both backends implement: keys are '/'-separated paths under the catalog root.

Two conditional primitives carry every guarantee of the catalog:
- `create` / `create_file`: write-once (If-None-Match: *, or O_EXCL locally); `Exists` when taken;
- `replace`: compare-and-swap on an ETag (If-Match); `ConflictError` when it changed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import CatalogError, ConflictError

# Read-modify-write step: gets the current bytes (None if absent), returns new bytes or
# None for "leave it". It may run several times (after a lost race), so it must not have
# side effects beyond recording its result.
Mutation = Callable[[bytes | None], bytes | None]


class MissingObject(CatalogError):
    """The object does not exist (deleted, never written, or lost)."""


class Exists(ConflictError):
    """A write-once create found the key taken."""


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object as listed."""

    key: str
    size: int
    modified: float  # Unix time of the last write (server clock)


class Store(ABC):
    """Flat object storage with write-once creates and compare-and-swap replaces."""

    @abstractmethod
    def uri_of(self, key: str) -> str:
        """Full URI of `key` (for index entries and messages)."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """Whole object, or None when it does not exist."""

    @abstractmethod
    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """(content, ETag) or None when absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and time of an object, or None when absent."""

    @abstractmethod
    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object; raise MissingObject when it does not exist."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Store `data` at `key` atomically, last writer wins (progress objects only)."""

    @abstractmethod
    def upload(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key` atomically, last writer wins."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> None:
        """Write-once: store `data` only if `key` does not exist; raise Exists otherwise."""

    def create_in_claim(self, key: str, data: bytes) -> None:
        """Write-once create inside a folder this writer has claimed (no other writer may write
        there, so the lock mode needs no lock for it)."""
        self.create(key, data)

    @abstractmethod
    def create_file(self, key: str, path: Path) -> None:
        """Write-once upload of a file; raise Exists when `key` is taken."""

    @abstractmethod
    def replace(self, key: str, data: bytes, etag: str | None) -> None:
        """Store `data` only if `key` still has `etag` (None: only if absent); ConflictError otherwise."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (recursive, paginated, sorted by key)."""

    @abstractmethod
    def list_folders(self, prefix: str) -> list[str]:
        """The next-level folder names directly below `prefix` (which ends with '/')."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove objects; absent ones are fine."""

    def now(self) -> float:
        """The storage's clock (Unix time): what `modified` times compare against."""
        return time.time()

    def update(self, key: str, mutate: Mutation, deadline_s: float = 60.0) -> None:
        """Atomic read-modify-write of one small object by compare-and-swap, retried on conflict."""
        import random

        give_up = time.monotonic() + deadline_s
        attempt = 0
        while True:
            found = self.read_tagged(key)
            new = mutate(found[0] if found else None)
            if new is None:
                return
            try:
                self.replace(key, new, found[1] if found else None)
                return
            except ConflictError:
                attempt += 1
                if time.monotonic() > give_up:
                    raise CatalogError(f"{self.uri_of(key)} is too contended: gave up after {attempt} tries") from None
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))

    def check_location(self) -> None:  # noqa: B027 - optional hook
        """Raise CatalogError when the location does not exist (a missing bucket)."""

    def create_location(self) -> None:  # noqa: B027 - optional hook
        """Create the location (the bucket); only `e2gan catalog init` calls this."""

    def conditional_writes_work(self) -> bool:
        """Does the server refuse a write whose condition fails? (probed at init)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
