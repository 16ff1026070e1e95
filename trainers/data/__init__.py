"""The data side of training: conversions, teacher pairs, minimal data selection."""

from trainers.data.convert import to_tensor, to_uint8
from trainers.data.features import (
    CLIPImageFeatures,
    FeaturesFn,
    clip_image_features,
    compute_features,
    pixel_features,
)
from trainers.data.pairs import Pair, PairStore, pair_key, pair_seed, synthesize_batch
from trainers.data.select import kmeans, random_subset, select_minimal, select_nearest_centres, subset_size

__all__ = [
    "CLIPImageFeatures",
    "FeaturesFn",
    "Pair",
    "PairStore",
    "clip_image_features",
    "compute_features",
    "kmeans",
    "pair_key",
    "pair_seed",
    "pixel_features",
    "random_subset",
    "select_minimal",
    "select_nearest_centres",
    "subset_size",
    "synthesize_batch",
    "to_tensor",
    "to_uint8",
]
