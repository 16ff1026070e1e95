"""Before/after grid: one row per test image: source | teacher | base | adapter.

Tiles are shown at a readable size (at least `min_tile` px, nearest-neighbour so the
training resolution's pixels stay visible rather than being smoothed into blobs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


MIN_TILE = 256


def save_grid(columns: list[torch.Tensor], path: Path, rows: int = 4, pad: int = 4, min_tile: int = MIN_TILE) -> Path:
    """Columns are [N, 3, H, W] tensors in [-1, 1] shown side by side (first `rows` images)."""
    cols = [_to_uint8(c[:rows]) for c in columns]
    factor = max(1, -(-min_tile // min(cols[0].shape[1], cols[0].shape[2])))  # ceil: every tile >= min_tile
    if factor > 1:
        cols = [c.repeat(factor, axis=1).repeat(factor, axis=2) for c in cols]
    n, h, w = cols[0].shape[0], cols[0].shape[1], cols[0].shape[2]
    canvas = np.full((n * (h + pad) + pad, len(cols) * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for j, col in enumerate(cols):
        for i in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = col[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
