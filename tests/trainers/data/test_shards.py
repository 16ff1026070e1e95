"""uint8 shards of a pair store: written once a shard at a time, memory-mapped, shipped as paths."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from trainers.data import PairStore, synthesize_batch
from trainers.data.shards import open_shards, write_shards
from trainers.sources import source_hashes, synthetic_scenes
from trainers.teachers import ProceduralTeacher


class ArrayStore:
    """A pair store's load over in-memory arrays, counting its calls and the pairs asked for."""

    def __init__(self, n: int, size: int = 4) -> None:
        rng = np.random.default_rng(0)
        self.sources = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        self.keys = [f"k{i}" for i in range(n)]
        self.calls: list[int] = []

    def load(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(keys))
        rows = [self.keys.index(k) for k in keys]
        return self.sources[rows], self.targets[rows]


def test_shards_round_trip_a_shard_at_a_time_and_are_written_once(tmp_path: Path) -> None:
    store = ArrayStore(7)
    folder = write_shards(tmp_path / "shards", store.keys, store.load, shard_pairs=3)
    assert store.calls == [3, 3, 1]  # never more than one shard in memory
    sources, targets, keys = open_shards(folder)
    assert keys == store.keys and sources.shape == (7, 4, 4, 3) and len(targets) == 7
    rows = np.array([6, 0, 3, 3, 5])  # across shards, unsorted, repeated
    np.testing.assert_array_equal(sources[rows], store.sources[rows])
    np.testing.assert_array_equal(targets[rows], store.targets[rows])
    assert sources[rows].flags.writeable  # a fresh batch, not a view of the map
    assert write_shards(tmp_path / "shards", store.keys, store.load, shard_pairs=3) == folder
    assert store.calls == [3, 3, 1]  # the published set is reused
    assert [p.name for p in (tmp_path / "shards").iterdir()] == [folder.name]  # no temp folder left
    with pytest.raises(IndexError):
        sources[np.array([7])]


def test_shards_pickle_as_paths_and_reopen(tmp_path: Path) -> None:
    store = ArrayStore(64, size=16)
    sources, _, _ = open_shards(write_shards(tmp_path, store.keys, store.load, shard_pairs=16))
    sources[np.array([1, 40])]  # opens two maps
    payload = pickle.dumps(sources)
    assert len(payload) < 2000 < store.sources.nbytes
    np.testing.assert_array_equal(pickle.loads(payload)[np.array([63, 2])], store.sources[[63, 2]])


def test_a_pair_store_shards_to_the_pairs_it_loads(tmp_path: Path) -> None:
    images = synthetic_scenes(5, 16, seed=0)
    store = PairStore(tmp_path / "pairs")
    pairs = synthesize_batch(images, source_hashes(images), ProceduralTeacher("cartoon"), "cartoon", "cartoon")
    for pair in pairs:
        store.put(pair)
    keys = [p.key for p in reversed(pairs)]
    sources, targets, _ = open_shards(write_shards(tmp_path / "pairs" / "shards", keys, store.load, shard_pairs=2))
    src, tgt = store.load(keys)
    np.testing.assert_array_equal(sources[np.arange(5)], src)
    np.testing.assert_array_equal(targets[np.arange(5)], tgt)


def test_an_empty_or_mixed_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no pairs"):
        write_shards(tmp_path, [], ArrayStore(1).load)
    small, large = ArrayStore(2, size=4), ArrayStore(2, size=8)

    def mixed(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return (small if keys[0] == "k0" else large).load(keys)

    with pytest.raises(ValueError, match="differ in size"):
        write_shards(tmp_path, ["k0", "k1"], mixed, shard_pairs=1)
    assert list(tmp_path.iterdir()) == []  # nothing published, no temp folder


def test_a_killed_writers_temp_folder_is_removed_once_stale(tmp_path: Path) -> None:
    dead, live = tmp_path / ".tmp-dead", tmp_path / ".tmp-live"
    for folder in (dead, live):
        folder.mkdir()
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    folder = write_shards(tmp_path, ["k0"], ArrayStore(1).load)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, folder.name])  # a live writer's stays
