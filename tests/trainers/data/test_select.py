from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.data import kmeans, random_subset, select_minimal, select_nearest_centres, subset_size
from trainers.sources import synthetic_scenes


def _blobs(per: int = 20, centres: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.arange(centres, dtype=torch.float32)[:, None] * torch.tensor([10.0, -7.0])
    labels = torch.arange(centres).repeat_interleave(per)
    return means[labels] + 0.3 * torch.randn(len(labels), 2, generator=g), labels


@pytest.mark.parametrize(
    ("n", "fraction", "k"), [(96, 0.5, 48), (30, 0.1, 3), (10, 0.01, 1), (7, 1.0, 7), (7, 0.99, 7)]
)
def test_subset_size(n: int, fraction: float, k: int) -> None:
    assert subset_size(n, fraction) == k


def test_subset_size_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError):
        subset_size(10, 0.0)


def test_kmeans_finds_blobs() -> None:
    x, labels = _blobs()
    centres, assign = kmeans(x, 4, seed=0)
    assert centres.shape == (4, 2) and assign.shape == (80,) and assign.dtype == torch.long
    # Each true blob maps to exactly one cluster.
    for b in range(4):
        assert len(assign[labels == b].unique()) == 1
    assert len(assign.unique()) == 4


def test_kmeans_deterministic_by_seed() -> None:
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(1))
    a, b = kmeans(x, 6, seed=3), kmeans(x, 6, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_kmeans_with_duplicates_and_k_equals_n() -> None:
    x = torch.zeros(5, 3)
    x[4] = 1.0
    centres, assign = kmeans(x, 5, seed=0)
    assert len(centres) == 5 and assign.shape == (5,)
    with pytest.raises(ValueError):
        kmeans(x, 6)


def test_select_keeps_one_per_blob() -> None:
    x, labels = _blobs(per=25, centres=4)
    keep = select_nearest_centres(x, 4 / 100, seed=0)
    assert len(keep) == 4 and sorted(labels[keep].tolist()) == [0, 1, 2, 3]


def test_select_nearest_is_central() -> None:
    x, labels = _blobs(per=25, centres=4)
    keep = select_nearest_centres(x, 0.04, seed=0)
    for i in keep:
        blob = x[labels == labels[i]]
        # The kept sample is among the 5 nearest to its blob's mean.
        d = (blob - blob.mean(0)).norm(dim=1)
        assert (d < (x[i] - blob.mean(0)).norm()).sum() < 5


def test_select_unique_sorted_and_sized() -> None:
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    keep = select_nearest_centres(x, 0.5, seed=0)
    assert len(keep) == 20 == len(set(keep)) and keep == sorted(keep)
    assert select_nearest_centres(x, 1.0) == list(range(40))


def test_select_more_centres_than_distinct_points() -> None:
    x = torch.zeros(10, 2)
    x[5:] = 1.0
    keep = select_nearest_centres(x, 0.5, seed=0)
    assert len(keep) == 5 == len(set(keep))


def test_select_accepts_any_feature_shape() -> None:
    feats = torch.randn(12, 4, 2, 2, generator=torch.Generator().manual_seed(0))  # a bottleneck map
    assert len(select_nearest_centres(feats, 0.25, seed=0)) == 3


def test_random_subset() -> None:
    a = random_subset(100, 0.3, seed=1)
    assert len(a) == 30 == len(set(a)) and a == sorted(a) and a == random_subset(100, 0.3, seed=1)
    assert a != random_subset(100, 0.3, seed=2)


def test_select_minimal_over_images() -> None:
    images = synthetic_scenes(20, 32, seed=0)
    calls: list[int] = []

    def features_fn(batch: np.ndarray) -> torch.Tensor:
        calls.append(len(batch))
        return torch.from_numpy(batch.reshape(len(batch), -1)[:, ::7].astype(np.float32))

    keep = select_minimal(images, 0.25, seed=0, features_fn=features_fn, batch_size=8)
    assert len(keep) == 5 and calls == [8, 8, 4]
    assert len(select_minimal(images, 0.25, seed=0)) == 5  # pixel features by default
    assert select_minimal(images, 0.25, seed=0, method="random") == random_subset(20, 0.25, seed=0)
    with pytest.raises(ValueError):
        select_minimal(images, 0.25, method="spectral")
