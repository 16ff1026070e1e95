"""Small numpy image operations for the procedural teachers.

Images are float32 [N, H, W, 3] in [0, 1], grey maps [N, H, W]. Everything is local
(small kernels), so a small conv net can learn the edits.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gray(x: np.ndarray) -> np.ndarray:
    return x @ LUMA


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _conv1d(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="reflect" if x.shape[axis] > r else "edge")
    n = x.shape[axis]
    out = np.zeros_like(x)
    for i, w in enumerate(kernel):
        out += w * np.take(p, np.arange(i, i + n), axis=axis)
    return out


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over H and W (axes 1 and 2)."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma)
    return _conv1d(_conv1d(x, k, 1), k, 2)


def _shift(p: np.ndarray, dy: int, dx: int, h: int, w: int) -> np.ndarray:
    return p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def sobel(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical gradients of a grey map (3x3 Sobel, edge padding)."""
    h, w = g.shape[1:3]
    p = np.pad(g, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (
        _shift(p, -1, 1, h, w)
        + 2 * _shift(p, 0, 1, h, w)
        + _shift(p, 1, 1, h, w)
        - _shift(p, -1, -1, h, w)
        - 2 * _shift(p, 0, -1, h, w)
        - _shift(p, 1, -1, h, w)
    ) / 8.0
    gy = (
        _shift(p, 1, -1, h, w)
        + 2 * _shift(p, 1, 0, h, w)
        + _shift(p, 1, 1, h, w)
        - _shift(p, -1, -1, h, w)
        - 2 * _shift(p, -1, 0, h, w)
        - _shift(p, -1, 1, h, w)
    ) / 8.0
    return gx, gy


def edges(g: np.ndarray) -> np.ndarray:
    gx, gy = sobel(g)
    return np.sqrt(gx * gx + gy * gy)


def posterize(x: np.ndarray, levels: int) -> np.ndarray:
    return np.round(x * (levels - 1)) / (levels - 1)


def saturate(x: np.ndarray, amount: float) -> np.ndarray:
    """amount 0 = grey, 1 = unchanged, > 1 = more colourful."""
    g = gray(x)[..., None]
    return g + (x - g) * amount


def radial(h: int, w: int) -> np.ndarray:
    """Distance from the centre, 0 there and 1 at the corners: [H, W]."""
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    return np.sqrt((x * x + y * y) / 2.0)


def colormap(t: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] [N, H, W] through evenly spaced RGB stops [K, 3]."""
    pos = np.clip(t, 0.0, 1.0) * (len(stops) - 1)
    i = np.minimum(pos.astype(np.int64), len(stops) - 2)
    f = (pos - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def warp(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Bilinear resample of x at (y + dy, x + dx); displacements in pixels, [H, W]."""
    n, h, w, _ = x.shape
    yy = np.clip(np.arange(h, dtype=np.float32)[:, None] + dy, 0, h - 1)
    xx = np.clip(np.arange(w, dtype=np.float32)[None, :] + dx, 0, w - 1)
    y0, x0 = np.minimum(yy.astype(np.int64), h - 2), np.minimum(xx.astype(np.int64), w - 2)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    top = x[:, y0, x0] * (1 - fx) + x[:, y0, x0 + 1] * fx
    bottom = x[:, y0 + 1, x0] * (1 - fx) + x[:, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def noise(rngs: list[np.random.Generator], h: int, w: int) -> np.ndarray:
    """Standard normal noise [N, H, W], one generator per image."""
    return np.stack([r.standard_normal((h, w), dtype=np.float32) for r in rngs])


def uniform(rngs: list[np.random.Generator], h: int, w: int) -> np.ndarray:
    """Uniform noise in [0, 1) [N, H, W], one generator per image."""
    return np.stack([r.random((h, w), dtype=np.float32) for r in rngs])
