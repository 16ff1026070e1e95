"""The Teacher interface: edit source images into targets for one prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


class TeacherUnavailable(RuntimeError):
    """The teacher cannot be built here: missing weights, bad folder, unknown name."""


@runtime_checkable
class Teacher(Protocol):
    """Edits uint8 [N, H, W, 3] images; the same (image, prompt, seed) gives the same edit.

    id is stable and names everything that changes outputs (version, model, settings):
    pair stores are keyed on it, so a different id never reuses another teacher's pairs.
    """

    @property
    def id(self) -> str: ...

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray: ...


def check_images(images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")


def per_image_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per image: a single seed is repeated, a sequence must have n entries."""
    if isinstance(seed, int | np.integer):
        return [int(seed)] * n
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} images")
    return seeds
