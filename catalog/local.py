"""The local-folder backend: same layout as S3; atomic by rename, serialised by flock."""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from catalog.errors import CatalogError
from catalog.store import MissingObject, Mutation, ObjectInfo, Store

_TMP_MARK = ".tmp-"


class LocalStore(Store):
    """Objects are files under `root`; writes go to a temporary sibling, then `os.replace`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise CatalogError(f"invalid catalog key {key!r}")
        return self.root.joinpath(*parts)

    def uri_of(self, key: str) -> str:
        return str(self._path(key))

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CatalogError(f"cannot read {self.uri_of(key)}: {exc.strerror}") from None

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise MissingObject(f"missing object {self.uri_of(key)}") from None
        with handle:
            while block := handle.read(chunk):
                yield block

    def _replace(self, key: str, fill: Callable[[Path], object]) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
            try:
                fill(tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot write {target}: {exc.strerror or exc}") from None

    def write(self, key: str, data: bytes) -> None:
        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())

        self._replace(key, fill)

    def upload(self, key: str, path: Path) -> None:
        self._replace(key, lambda tmp: shutil.copyfile(path, tmp))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only below the folder part of the prefix, not the whole catalog.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        for dirpath, _dirs, names in os.walk(start):
            for name in names:
                if name.startswith(".") and (_TMP_MARK in name or name.endswith(".lock")):
                    continue  # in-flight writes and lock files are not objects
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        stat = path.stat()
                    except FileNotFoundError:
                        continue  # deleted while listing
                    yield ObjectInfo(key, stat.st_size, stat.st_mtime)

    def delete(self, keys: Iterable[str]) -> None:
        parents: set[Path] = set()
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parents.add(path.parent)
        # Drop folders left empty, deepest first, never the root itself.
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            while parent != self.root and self.root in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def update(self, key: str, mutate: Mutation) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        lock_path = target.with_name(f".{target.name}.lock")
        # flock excludes other processes and other open() calls of this process alike.
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                new = mutate(self.read(key))
                if new is not None:
                    self.write(key, new)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
