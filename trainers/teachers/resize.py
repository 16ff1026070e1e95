"""Resizing between the teacher's resolution and the training resolution, on the device."""

from __future__ import annotations

from typing import Any

MULTIPLE = 8  # SD VAEs downsample by 8: every teacher size is a multiple of it


def teacher_size(h: int, w: int, resolution: int) -> tuple[int, int]:
    """(h, w) scaled so the long side is `resolution`, both rounded to a multiple of 8."""
    if h == w:
        return resolution, resolution
    scale = resolution / max(h, w)
    return (max(MULTIPLE, round(h * scale / MULTIPLE) * MULTIPLE), max(MULTIPLE, round(w * scale / MULTIPLE) * MULTIPLE))


def resize(x: Any, size: tuple[int, int]) -> Any:
    """Bicubic resize of float images [N, C, H, W] in [0, 1]; anti-aliased when shrinking."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def to_uint8(x: Any) -> Any:
    """Float images [N, C, H, W] in [0, 1] -> uint8 [N, H, W, C] (still on the device)."""
    import torch

    return (x.float().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
