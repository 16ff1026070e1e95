"""Pair stores the Ray path writes to: a local PairStore folder or an S3 prefix.

Both keep the PairStore contract: a pair exists once its target and its manifest record
exist, and keys come from pair_key, so the single-machine path, the Ray path and every
concept share one cache. Commits skip what is already committed, which makes a retried
chunk (after an actor died mid-write) add nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trainers.data.pairs import MANIFEST, Pair, PairStore

if TYPE_CHECKING:
    from catalog.settings import S3Settings


class PairSink(Protocol):
    """Where pairs are committed and loaded from."""

    @property
    def uri(self) -> str: ...

    def known(self, keys: Sequence[str]) -> set[str]:
        """The committed keys among keys (reads the whole manifest: once per run)."""
        ...

    def recovered(self, keys: Sequence[str], shard: str) -> set[str]:
        """Keys of this shard committed by an earlier attempt (cheap: runs per chunk)."""
        ...

    def commit(self, pairs: Sequence[Pair], shard: str) -> int:
        """Store pairs not yet committed; return how many were written."""
        ...

    def load(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sources, targets) uint8 [N, H, W, 3] in the order of keys."""
        ...

    def manifest_records(self) -> list[dict[str, Any]]:
        """Every manifest record as stored, duplicates included (for audits)."""
        ...


class LocalPairSink:
    """A PairStore folder (sources/, targets/, manifest.jsonl), shared with PairStore.synthesize.

    Several processes may commit at once: files are written atomically and manifest lines
    are appended under a file lock by PairStore.put. Across nodes the folder must be a shared
    file system with working flock (a ReadWriteMany volume).
    """

    def __init__(self, root: str | Path) -> None:
        self.store = PairStore(root)

    @property
    def uri(self) -> str:
        return str(self.store.root)

    def known(self, keys: Sequence[str]) -> set[str]:
        self.store.refresh()
        return {k for k in keys if self.store.has(k)}

    def recovered(self, keys: Sequence[str], shard: str) -> set[str]:
        # A target file is written before its manifest line: only then can the key be committed,
        # so the manifest is re-read only when such a file exists (after a retry, not normally).
        on_disk = [k for k in keys if self.store.target_path(k).is_file()]
        if any(not self.store.has(k) for k in on_disk):
            self.store.refresh()
        return {k for k in on_disk if self.store.has(k)}

    def commit(self, pairs: Sequence[Pair], shard: str) -> int:
        done = self.recovered([p.key for p in pairs], shard)
        todo = [p for p in pairs if p.key not in done]
        for pair in todo:
            self.store.put(pair)
        return len(todo)

    def load(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.store.load(list(keys))

    def manifest_records(self) -> list[dict[str, Any]]:
        path = self.store.root / MANIFEST
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a killed writer
        return records


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith("s3://")


def open_pair_store(uri: str | Path, settings: S3Settings | None = None) -> PairSink:
    """The store at a local path (or file:// URL) or s3://bucket/prefix.

    S3 settings default to E2GAN_S3_* read where this runs (each Ray worker reads its own
    environment, which is how KubeRay pods receive the Secret).
    """
    if is_s3(uri):
        from trainers.synthesis.s3store import S3PairSink

        return S3PairSink(str(uri), settings)
    text = str(uri)
    return LocalPairSink(Path(text.removeprefix("file://")).expanduser())


def load_pairs(
    store: str | Path, keys: Sequence[str], settings: S3Settings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(sources, targets) of keys as uint8 [N, H, W, 3], in the order of keys."""
    return open_pair_store(store, settings).load(keys)
