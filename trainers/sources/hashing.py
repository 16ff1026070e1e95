"""Content hashes of source images: the identity a pair store and a seed are keyed on."""

from __future__ import annotations

import hashlib

import numpy as np


def source_hash(image: np.ndarray) -> str:
    """sha256 of one uint8 image's shape and bytes (hex).

    The shape is hashed too so two images with the same bytes in a different layout
    (64x128 vs 128x64) never collide.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected one uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    h = hashlib.sha256()
    h.update(("x".join(str(d) for d in image.shape) + ":").encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def source_hashes(images: np.ndarray) -> list[str]:
    """source_hash of each image of a batch [N, H, W, 3]."""
    return [source_hash(img) for img in images]
