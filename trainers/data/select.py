"""Minimal data: keep the samples nearest to k-means centres (E2GAN's data selection).

Clustering the features of the candidate sources and keeping one sample per cluster
gives a small subset that still covers the data's variety; random_subset is the
baseline it is compared with. A small torch k-means++ keeps this dependency-free and
deterministic by seed. Feature extractors live in features.py and are re-exported here.
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


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability ~ squared distance."""
    n = len(x)
    chosen = [int(torch.randint(n, (1,), generator=gen))]
    d2 = torch.cdist(x, x[chosen[0]][None]).squeeze(1) ** 2
    for _ in range(1, k):
        if float(d2.sum()) <= 0.0:
            # Every point sits on a centre (duplicates): take any point not chosen yet.
            rest = torch.ones(n, dtype=torch.bool)
            rest[chosen] = False
            candidates = rest.nonzero().squeeze(1)
            nxt = int(candidates[torch.randint(len(candidates), (1,), generator=gen)])
        else:
            nxt = int(torch.multinomial(d2, 1, generator=gen))
        chosen.append(nxt)
        d2 = torch.minimum(d2, torch.cdist(x, x[nxt][None]).squeeze(1) ** 2)
    return x[chosen].clone()


def kmeans(
    features: torch.Tensor, k: int, seed: int = 0, iters: int = 50
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding: (centres [k, D], assignment [N] long)."""
    x = torch.as_tensor(features).detach().to("cpu", torch.float32).reshape(len(features), -1)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    gen = torch.Generator().manual_seed(seed)
    centres = _kmeans_pp(x, k, gen)
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            # Re-seed empty clusters on the points farthest from their centres.
            dist = torch.cdist(x, centres).gather(1, assign[:, None]).squeeze(1)
            centres[empty] = x[dist.topk(len(empty)).indices]
        new_assign = torch.cdist(x, centres).argmin(1)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return centres, assign


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
