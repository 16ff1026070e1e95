"""Conversions between the data layer's images and the models' tensors.

The data layer passes images as numpy uint8 [N, H, W, 3] RGB (what PNG files and Ray
Data batches hold); the generator works on float32 [N, 3, H, W] in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch


def _check_images(images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")


def to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W] in [-1, 1]."""
    _check_images(images)
    # Arrays from Ray's object store are read-only; torch shares memory and warns about
    # those, so copy only when the array is not contiguous and writable.
    x = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    if device is not None:
        # Move the compact uint8 bytes, then convert on the device.
        x = x.to(device)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] (clamped, rounded)."""
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"expected a tensor [N, 3, H, W], got {tuple(tensor.shape)}")
    x = tensor.detach().float().add(1.0).mul(127.5).clamp(0.0, 255.0).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
