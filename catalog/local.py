"""The local-folder backend: same layout and semantics as S3.

- write-once creates: the bytes go to a temporary sibling, then `os.link` puts them in place
  only if the name is free (atomic, like O_EXCL, and nobody ever sees a partial file);
- compare-and-swap: under flock, the current content's sha256 is the ETag, then `os.replace`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from catalog.errors import CatalogError, ConflictError
from catalog.store import Exists, MissingObject, ObjectInfo, Store

_TMP_MARK = ".tmp-"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore(Store):
    """Objects are files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise CatalogError(f"invalid catalog key {key!r}")
        return self.root.joinpath(*parts)

    def uri_of(self, key: str) -> str:
        return str(self._path(key))

    def check_location(self) -> None:
        """A local catalog folder is created by its first write (a typo'd bucket is the S3 risk)."""

    def create_location(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create {self.root}: {exc.strerror}") from None

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise CatalogError(f"cannot read {self.uri_of(key)}: {exc.strerror}") from None

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        data = self.read(key)
        return None if data is None else (data, _etag(data))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(key, stat.st_size, stat.st_mtime)

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise MissingObject(f"missing object {self.uri_of(key)}") from None
        with handle:
            while block := handle.read(chunk):
                yield block

    def _staged(self, key: str, fill: Callable[[Path], object], place: Callable[[Path, Path], None]) -> None:
        """Fill a temporary sibling, then `place` it at the key (replace or link)."""
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
            try:
                fill(tmp)
                place(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except FileExistsError:
            raise Exists(f"{target} already exists") from None
        except OSError as exc:
            raise CatalogError(f"cannot write {target}: {exc.strerror or exc}") from None

    @staticmethod
    def _bytes(data: bytes) -> Callable[[Path], None]:
        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())

        return fill

    def write(self, key: str, data: bytes) -> None:
        self._staged(key, self._bytes(data), os.replace)

    def upload(self, key: str, path: Path) -> None:
        self._staged(key, lambda tmp: shutil.copyfile(path, tmp), os.replace)

    def create(self, key: str, data: bytes) -> None:
        self._staged(key, self._bytes(data), os.link)  # link fails when the name is taken

    def create_file(self, key: str, path: Path) -> None:
        self._staged(key, lambda tmp: shutil.copyfile(path, tmp), os.link)

    def replace(self, key: str, data: bytes, etag: str | None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # flock excludes other processes and other open() calls of this process alike.
        with open(target.with_name(f".{target.name}.lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found = self.read_tagged(key)
                if (found[1] if found else None) != etag:
                    raise ConflictError(f"{target} changed concurrently")
                self.write(key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only below the folder part of the prefix, not the whole catalog.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        found: list[ObjectInfo] = []
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
                    found.append(ObjectInfo(key, stat.st_size, stat.st_mtime))
        yield from sorted(found, key=lambda o: o.key)

    def list_folders(self, prefix: str) -> list[str]:
        start = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        try:
            return sorted(e.name for e in os.scandir(start) if e.is_dir() and not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

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
