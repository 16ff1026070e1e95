"""Pairs as fixed-size uint8 `.npy` shards, written once next to the pair store and memory-mapped.

The pair store keeps one PNG per image: right for caching, slow and heavy to decode into
one array for a large set. Shards hold the same pixels as uint8 [S, H, W, 3] arrays, S
pairs a file (the last one shorter), so writing holds one shard in memory and reading
with `np.load(mmap_mode="r")` touches only the pages of the pairs a batch samples.

A shard set is named by the digest of its keys and published by one rename, so a rerun
(or a resumed job) finds it whole and reuses it; a killed writer leaves only a temp folder.
Readers pickle as their folder path: a Ray worker reopens the files instead of receiving
their bytes (the folder must be readable where the worker runs, as the store's is).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainers.data.pairs import STALE_TMP_SECONDS

SHARD_PAIRS = 256  # pairs a shard: 50 MB a side at 256 px, 3 MB at 64 px
INDEX = "index.json"
LoadPairs = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


def keys_digest(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


class ShardedImages:
    """uint8 [N, H, W, 3] over memory-mapped shards; `images[rows]` gathers a copy of those rows."""

    def __init__(self, paths: Sequence[Path], shard_pairs: int, shape: tuple[int, ...]) -> None:
        self.paths = [Path(p) for p in paths]
        self.shard_pairs = shard_pairs
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.uint8)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:  # the paths travel, never the pixels
        return {**self.__dict__, "_maps": {}}

    def _shard(self, i: int) -> np.ndarray:
        if i not in self._maps:
            self._maps[i] = np.load(self.paths[i], mmap_mode="r")
        return self._maps[i]

    def __getitem__(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside [0, {len(self)})")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        shard, local = np.divmod(rows, self.shard_pairs)
        for i in np.unique(shard):
            hit = shard == i
            out[hit] = self._shard(int(i))[local[hit]]
        return out


def write_shards(folder: str | Path, keys: Sequence[str], load: LoadPairs, shard_pairs: int = SHARD_PAIRS) -> Path:
    """Write the pairs of keys (in that order) as shards under folder/<digest of keys>; return that folder.

    `load` is a pair store's load (uint8 sources and targets of some keys); it is called
    once per shard. A shard set already there is reused as it is.
    """
    if not keys:
        raise ValueError("no pairs to shard")
    final = Path(folder) / keys_digest(keys)
    if (final / INDEX).is_file():
        return final
    for stale in Path(folder).glob(".tmp-*"):  # left by a killed writer
        if stale.stat().st_mtime < time.time() - STALE_TMP_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(folder) / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        shape = None
        for n, start in enumerate(range(0, len(keys), shard_pairs)):
            sources, targets = load(keys[start : start + shard_pairs])
            shape = shape or sources.shape[1:]
            if sources.shape[1:] != shape or targets.shape != sources.shape:
                raise ValueError(f"stored pairs differ in size ({shape} and {sources.shape[1:]}); shard one resolution")
            np.save(tmp / f"source-{n:05d}.npy", sources)
            np.save(tmp / f"target-{n:05d}.npy", targets)
        index = {"pairs": len(keys), "shard_pairs": shard_pairs, "shape": [len(keys), *shape], "keys": list(keys)}
        (tmp / INDEX).write_text(json.dumps(index))
        try:
            os.rename(tmp, final)
        except OSError:  # another writer published the same set first
            if not (final / INDEX).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def open_shards(folder: str | Path) -> tuple[ShardedImages, ShardedImages, list[str]]:
    """(sources, targets, keys) of a shard set `write_shards` published."""
    folder = Path(folder).resolve()  # workers elsewhere in the tree (Ray's) open the same files
    index = json.loads((folder / INDEX).read_text())
    shards = -(-index["pairs"] // index["shard_pairs"])
    shape = tuple(index["shape"])

    def side(name: str) -> ShardedImages:
        return ShardedImages([folder / f"{name}-{n:05d}.npy" for n in range(shards)], index["shard_pairs"], shape)

    return side("source"), side("target"), index["keys"]
