from __future__ import annotations

import time

import numpy as np
import pytest

from trainers.sources import source_hash, source_hashes, synthetic_scenes


def test_shape_and_dtype() -> None:
    x = synthetic_scenes(4, 48, seed=0)
    assert x.shape == (4, 48, 48, 3) and x.dtype == np.uint8


def test_deterministic_by_seed() -> None:
    np.testing.assert_array_equal(synthetic_scenes(3, 32, seed=5), synthetic_scenes(3, 32, seed=5))
    assert not np.array_equal(synthetic_scenes(3, 32, seed=5), synthetic_scenes(3, 32, seed=6))


def test_prefix_stable_when_n_grows() -> None:
    np.testing.assert_array_equal(synthetic_scenes(3, 32, seed=1), synthetic_scenes(8, 32, seed=1)[:3])


def test_varied() -> None:
    x = synthetic_scenes(32, 32, seed=0).astype(np.float32)
    assert len(set(source_hashes(x.astype(np.uint8)))) == 32
    # Scenes differ in layout and colour, not just in noise: mean colours spread widely.
    assert x.mean(axis=(1, 2)).std(axis=0).min() > 10.0
    assert x.std(axis=(1, 2)).mean() > 20.0  # and each has structure, not a flat fill


def test_fast() -> None:
    start = time.perf_counter()
    synthetic_scenes(64, 64, seed=0)
    assert time.perf_counter() - start < 5.0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        synthetic_scenes(-1, 32)


def test_source_hash_covers_shape_and_bytes() -> None:
    a = np.zeros((4, 8, 3), np.uint8)
    b = np.zeros((8, 4, 3), np.uint8)
    assert source_hash(a) != source_hash(b)
    c = a.copy()
    c[0, 0, 0] = 1
    assert source_hash(a) != source_hash(c)
    assert source_hash(a) == source_hash(a.copy()) and len(source_hash(a)) == 64
