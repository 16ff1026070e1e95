"""Minimal data: keep the samples nearest to k-means centres (E2GAN's data selection).

Clustering the features of the candidate sources and keeping one sample per cluster
gives a small subset that still covers the data's variety; random_subset is the
baseline it is compared with. k-means is scikit-learn's, deterministic by seed. Feature extractors live in features.py and are re-exported here.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainers.data.features import FeaturesFn, clip_image_features, compute_features, pixel_features

__all__ = [
    "clip_image_features",
    "compute_features",
    "kmeans",
    "pixel_features",
    "random_subset",
    "select_minimal",
    "select_nearest_centres",
    "subset_size",
]


def subset_size(n: int, fraction: float) -> int:
    """ceil(fraction * n), at least 1 and at most n (rounded first: 0.1 * 30 is 3, not 4)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return min(n, max(1, math.ceil(round(fraction * n, 9))))


def kmeans(
    features: torch.Tensor, k: int, seed: int = 0, iters: int = 50
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's k-means (k-means++ seeding, one seeded run): (centres [k, D], assignment [N] long)."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    x = torch.as_tensor(features).detach().to("cpu", torch.float32).reshape(len(features), -1)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    with warnings.catch_warnings():  # duplicates: fewer distinct clusters than k is fine here
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, random_state=seed).fit(x.numpy())
    centres = torch.from_numpy(fitted.cluster_centers_).to(torch.float32)
    return centres, torch.from_numpy(fitted.labels_).to(torch.long)


def select_nearest_centres(
    features: torch.Tensor, fraction: float, seed: int = 0, iters: int = 50
) -> list[int]:
    """Indices (sorted, unique) of ceil(fraction * N) samples: the one nearest each centre.

    With k = the kept count, each centre claims its nearest sample not yet claimed;
    centres closest to a sample claim first, so ties between centres resolve well.
    """
    x = torch.as_tensor(features).detach().to("cpu", torch.float32).reshape(len(features), -1)
    n = len(x)
    k = subset_size(n, fraction)
    if k >= n:
        return list(range(n))
    centres, _ = kmeans(x, k, seed=seed, iters=iters)
    dist = torch.cdist(centres, x)  # [k, N]
    taken = torch.zeros(n, dtype=torch.bool)
    keep: list[int] = []
    for c in dist.min(1).values.argsort().tolist():
        row = dist[c].masked_fill(taken, float("inf"))
        i = int(row.argmin())
        taken[i] = True
        keep.append(i)
    return sorted(keep)


def random_subset(n: int, fraction: float, seed: int = 0) -> list[int]:
    """The baseline: ceil(fraction * n) indices drawn uniformly, sorted."""
    k = subset_size(n, fraction)
    return sorted(np.random.default_rng(seed).choice(n, size=k, replace=False).tolist())


def select_minimal(
    images: np.ndarray,
    fraction: float,
    seed: int = 0,
    features_fn: FeaturesFn | None = None,
    method: str = "kmeans",
    batch_size: int = 64,
) -> list[int]:
    """Indices of the kept images: 'kmeans' (nearest to centres of features_fn's features,
    pixel_features by default) or 'random' (the baseline)."""
    if method == "random":
        return random_subset(len(images), fraction, seed)
    if method != "kmeans":
        raise ValueError(f"method must be 'kmeans' or 'random', not {method!r}")
    features = compute_features(images, features_fn or pixel_features, batch_size)
    return select_nearest_centres(features, fraction, seed)
