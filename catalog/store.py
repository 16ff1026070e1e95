"""The storage interface both backends implement: keys are '/'-separated paths under the catalog root."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import CatalogError

# Read-modify-write step: gets the current bytes (None if absent), returns new bytes or
# None for "leave it". It may run several times (after a lost race), so it must not have
# side effects beyond recording its result.
Mutation = Callable[[bytes | None], bytes | None]


class MissingObject(CatalogError):
    """The object does not exist (deleted, never written, or lost)."""


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object as listed."""

    key: str
    size: int
    modified: float  # Unix time of the last write


class Store(ABC):
    """Flat object storage with one atomic primitive, `update`."""

    @abstractmethod
    def uri_of(self, key: str) -> str:
        """Full URI of `key` (for index entries and messages)."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """Whole object, or None when it does not exist."""

    @abstractmethod
    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object; raise MissingObject when it does not exist."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Store `data` at `key` atomically (readers see old or new, never part)."""

    @abstractmethod
    def upload(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key` atomically."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (recursive)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove objects; absent ones are fine."""

    @abstractmethod
    def update(self, key: str, mutate: Mutation) -> None:
        """Atomic read-modify-write of one small object: concurrent updates never lose one another."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Make the location writable (create the bucket) before a publish."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
