"""builtin://scenes: varied procedural scenes, deterministic by seed, fast on CPU.

Each scene is drawn from its own generator seeded by (seed, index), so image i is the
same whatever n is and a run can grow its data set without changing earlier sources.
Shapes are drawn at twice the size and box-downsampled, which anti-aliases edges.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import numpy as np

SUPERSAMPLE = 2

Canvas = np.ndarray  # float32 [S, S, 3] in [0, 1]
Grid = tuple[np.ndarray, np.ndarray]  # (y, x) in [0, 1], each [S, S]


def _hsv(
    rng: np.random.Generator, h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]
) -> np.ndarray:
    hue = rng.uniform(*h) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*s), rng.uniform(*v)), dtype=np.float32)


def _any_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng, (0.0, 1.0), (0.3, 1.0), (0.3, 1.0))


def _blend(canvas: Canvas, mask: np.ndarray, colour: np.ndarray | Canvas) -> None:
    m = np.clip(mask, 0.0, 1.0)[..., None]
    canvas *= 1.0 - m
    canvas += m * colour


def _soft(signed_distance: np.ndarray, px: float) -> np.ndarray:
    """Coverage of a shape from its signed distance (negative inside), one pixel soft."""
    return np.clip(0.5 - signed_distance / px, 0.0, 1.0)


def _ellipse(
    g: Grid, cx: float, cy: float, rx: float, ry: float, px: float, angle: float = 0.0
) -> np.ndarray:
    y, x = g
    c, s = np.cos(angle), np.sin(angle)
    u = ((x - cx) * c + (y - cy) * s) / rx
    v = (-(x - cx) * s + (y - cy) * c) / ry
    # Scale the normalised radius back to pixels for a one-pixel soft edge.
    return _soft((np.sqrt(u * u + v * v) - 1.0) * min(rx, ry), px)


def _rect(g: Grid, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    y, x = g
    return ((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).astype(np.float32)


def _triangle(g: Grid, cx: float, base_y: float, half_width: float, height: float) -> np.ndarray:
    """Isosceles triangle pointing up: apex at (cx, base_y - height)."""
    y, x = g
    t = (base_y - y) / height  # 0 at the base, 1 at the apex
    return ((t >= 0) & (t <= 1) & (np.abs(x - cx) <= half_width * (1 - t))).astype(np.float32)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid upsampled bilinearly."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    pos = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    f = pos - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _ridge(rng: np.random.Generator, x: np.ndarray, base: float, amplitude: float, waves: int) -> np.ndarray:
    """A skyline height per column: a sum of random sines (mountains, hills)."""
    h = np.full_like(x, base)
    for k in range(1, waves + 1):
        h += amplitude / k * np.sin(2 * np.pi * (k * rng.uniform(0.5, 1.5) * x + rng.random()))
    return h


def _texture(rng: np.random.Generator, g: Grid, size: int) -> Canvas:
    """A background texture: stripes, checker, noise or polka dots in two colours."""
    y, x = g
    a, b = _any_colour(rng), _any_colour(rng)
    kind = rng.integers(4)
    if kind == 0:
        theta, freq = rng.uniform(0, np.pi), rng.uniform(4, 14)
        m = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)))
    elif kind == 1:
        n = rng.integers(3, 9)
        m = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float32)
    elif kind == 2:
        m = _value_noise(rng, size, int(rng.integers(3, 10)))
    else:
        n = rng.integers(3, 8)
        fx, fy = (x * n) % 1 - 0.5, (y * n) % 1 - 0.5
        m = (fx * fx + fy * fy < 0.09).astype(np.float32)
    return a * m[..., None] + b * (1 - m[..., None])


def _sky(rng: np.random.Generator, g: Grid) -> tuple[Canvas, bool]:
    y, _ = g
    night = rng.random() < 0.25
    if night:
        top, bottom = (
            _hsv(rng, (0.6, 0.75), (0.5, 0.9), (0.05, 0.2)),
            _hsv(rng, (0.55, 0.8), (0.3, 0.7), (0.2, 0.45)),
        )
    elif rng.random() < 0.3:  # dusk
        top, bottom = (
            _hsv(rng, (0.6, 0.8), (0.4, 0.8), (0.4, 0.7)),
            _hsv(rng, (0.0, 0.12), (0.5, 0.9), (0.8, 1.0)),
        )
    else:
        top, bottom = (
            _hsv(rng, (0.55, 0.65), (0.5, 0.9), (0.6, 1.0)),
            _hsv(rng, (0.5, 0.6), (0.1, 0.4), (0.85, 1.0)),
        )
    t = y[..., None]
    return top * (1 - t) + bottom * t, night


def _sun_or_moon(rng: np.random.Generator, canvas: Canvas, g: Grid, px: float, night: bool) -> None:
    cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.35), rng.uniform(0.04, 0.1)
    y, x = g
    if night:
        _blend(canvas, _ellipse(g, cx, cy, r, r, px), np.array([0.95, 0.95, 0.85], np.float32))
        # Crescent: cover part of the disc with sky-ish dark.
        _blend(
            canvas, _ellipse(g, cx + r * 0.5, cy - r * 0.2, r, r, px), canvas[int(cy * len(y)) % len(y), 0]
        )
    else:
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        _blend(canvas, 0.5 * np.clip(1 - (d - r) / (2 * r), 0, 1) ** 2, np.array([1.0, 0.9, 0.6], np.float32))
        _blend(canvas, _ellipse(g, cx, cy, r, r, px), _hsv(rng, (0.1, 0.16), (0.4, 0.9), (0.95, 1.0)))


def _tree(rng: np.random.Generator, canvas: Canvas, g: Grid, px: float, cx: float, ground: float) -> None:
    h = rng.uniform(0.12, 0.3)
    trunk = np.array([0.35, 0.22, 0.1], np.float32) * rng.uniform(0.7, 1.2)
    _blend(canvas, _rect(g, cx - h * 0.06, ground - h * 0.45, cx + h * 0.06, ground), np.clip(trunk, 0, 1))
    leaf = _hsv(rng, (0.22, 0.4), (0.4, 0.9), (0.25, 0.7))
    if rng.random() < 0.5:  # conifer
        _blend(canvas, _triangle(g, cx, ground - h * 0.3, h * 0.3, h * 0.75), leaf)
    else:
        _blend(canvas, _ellipse(g, cx, ground - h * 0.65, h * 0.3, h * 0.35, px), leaf)


def _house(rng: np.random.Generator, canvas: Canvas, g: Grid, cx: float, ground: float) -> None:
    w, h = rng.uniform(0.12, 0.25), rng.uniform(0.1, 0.22)
    x0, x1, top = cx - w / 2, cx + w / 2, ground - h
    _blend(canvas, _rect(g, x0, top, x1, ground), _hsv(rng, (0.0, 0.15), (0.2, 0.7), (0.5, 1.0)))
    _blend(
        canvas,
        _triangle(g, cx, top, w * 0.6, h * rng.uniform(0.4, 0.8)),
        _hsv(rng, (0.95, 1.05), (0.5, 0.9), (0.3, 0.7)),
    )
    lit = (
        np.array([1.0, 0.9, 0.4], np.float32)
        if rng.random() < 0.5
        else np.array([0.6, 0.8, 0.95], np.float32)
    )
    for wx in (x0 + w * 0.2, x1 - w * 0.2 - w * 0.18):
        _blend(canvas, _rect(g, wx, top + h * 0.2, wx + w * 0.18, top + h * 0.45), lit)
    _blend(
        canvas,
        _rect(g, cx - w * 0.08, ground - h * 0.45, cx + w * 0.08, ground),
        np.array([0.3, 0.18, 0.1], np.float32),
    )


def _landscape(rng: np.random.Generator, g: Grid, size: int, px: float) -> Canvas:
    canvas, night = _sky(rng, g)
    _sun_or_moon(rng, canvas, g, px, night)
    y, x = g
    x_row = x[0]
    dim = 0.5 if night else 1.0
    for layer in range(int(rng.integers(1, 4))):
        base = 0.35 + 0.12 * layer + rng.uniform(-0.05, 0.05)
        ridge = _ridge(rng, x_row, base, rng.uniform(0.03, 0.12), 4)
        rock = _hsv(rng, (0.55, 0.75), (0.1, 0.4), (0.35, 0.7)) * dim * (1 - 0.15 * layer)
        _blend(canvas, (y >= ridge[None, :]).astype(np.float32), rock)
        if rng.random() < 0.4:  # snow caps
            _blend(
                canvas,
                ((y >= ridge[None, :]) & (y < ridge[None, :] + 0.03)).astype(np.float32),
                np.full(3, 0.95 * dim, np.float32),
            )
    ground = 0.7 + rng.uniform(-0.08, 0.08)
    hill = _ridge(rng, x_row, ground, 0.03, 2)
    grass = _hsv(rng, (0.15, 0.38), (0.4, 0.9), (0.3, 0.8)) * dim
    _blend(
        canvas,
        (y >= hill[None, :]).astype(np.float32),
        grass * (0.8 + 0.4 * _value_noise(rng, size, 8))[..., None],
    )
    if rng.random() < 0.3:  # lake reflecting the sky colour
        _blend(
            canvas,
            _ellipse(g, rng.uniform(0.3, 0.7), 0.9, rng.uniform(0.2, 0.4), 0.06, px),
            canvas[int(size * 0.1), int(size * 0.5)] * 0.8,
        )
    for _ in range(int(rng.integers(0, 5))):
        _tree(rng, canvas, g, px, rng.uniform(0.05, 0.95), float(hill[int(rng.integers(size))]) + 0.05)
    return canvas


def _town(rng: np.random.Generator, g: Grid, size: int, px: float) -> Canvas:
    canvas, night = _sky(rng, g)
    _sun_or_moon(rng, canvas, g, px, night)
    y, _ = g
    ground = rng.uniform(0.65, 0.8)
    _blend(canvas, (y >= ground).astype(np.float32), _hsv(rng, (0.05, 0.35), (0.2, 0.7), (0.3, 0.7)))
    slots = rng.permutation(np.linspace(0.12, 0.88, 5))
    for i, cx in enumerate(slots[: int(rng.integers(2, 6))]):
        if i % 3 == 2:
            _tree(rng, canvas, g, px, float(cx), ground)
        else:
            _house(rng, canvas, g, float(cx), ground)
    return canvas


def _portrait(rng: np.random.Generator, g: Grid, size: int, px: float) -> Canvas:
    canvas = _texture(rng, g, size) * rng.uniform(0.5, 1.0)
    cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.55)
    rx, ry = rng.uniform(0.18, 0.26), rng.uniform(0.24, 0.32)
    skin = _hsv(rng, (0.03, 0.1), (0.2, 0.6), (0.35, 1.0))
    _blend(canvas, _ellipse(g, cx, 1.05, rx * 2.2, 0.3, px), _any_colour(rng))  # shoulders
    _blend(canvas, _rect(g, cx - rx * 0.35, cy, cx + rx * 0.35, cy + ry * 1.3), skin * 0.9)  # neck
    _blend(
        canvas,
        _ellipse(g, cx, cy - ry * 0.35, rx * 1.1, ry * 0.8, px),
        _hsv(rng, (0.0, 0.12), (0.2, 0.8), (0.05, 0.6)),
    )  # hair
    _blend(canvas, _ellipse(g, cx, cy, rx, ry, px), skin)
    iris = _hsv(rng, (0.0, 0.7), (0.3, 0.9), (0.2, 0.6))
    for side in (-1, 1):
        ex, ey = cx + side * rx * 0.4, cy - ry * 0.12
        _blend(canvas, _ellipse(g, ex, ey, rx * 0.2, ry * 0.09, px), np.ones(3, np.float32))
        _blend(canvas, _ellipse(g, ex, ey, rx * 0.08, rx * 0.08, px), iris)
        _blend(
            canvas, _ellipse(g, ex, ey - ry * 0.17, rx * 0.22, ry * 0.03, px, angle=side * 0.15), skin * 0.3
        )
    _blend(canvas, _ellipse(g, cx, cy + ry * 0.12, rx * 0.08, ry * 0.14, px), skin * 0.8)  # nose
    _blend(
        canvas,
        _ellipse(g, cx, cy + ry * 0.5, rx * rng.uniform(0.25, 0.45), ry * 0.06, px),
        _hsv(rng, (0.95, 1.02), (0.4, 0.8), (0.4, 0.8)),
    )
    return canvas


def _shapes(rng: np.random.Generator, g: Grid, size: int, px: float) -> Canvas:
    canvas = _texture(rng, g, size)
    for _ in range(int(rng.integers(2, 7))):
        colour = _any_colour(rng)
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.06, 0.25)
        kind = rng.integers(3)
        if kind == 0:
            _blend(
                canvas,
                _ellipse(g, cx, cy, r, r * rng.uniform(0.5, 1.5), px, angle=rng.uniform(0, np.pi)),
                colour,
            )
        elif kind == 1:
            _blend(canvas, _rect(g, cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), colour)
        else:
            _blend(canvas, _triangle(g, cx, cy + r, r, 2 * r), colour)
    return canvas


SCENE_KINDS: dict[str, Callable[[np.random.Generator, Grid, int, float], Canvas]] = {
    "landscape": _landscape,
    "town": _town,
    "portrait": _portrait,
    "shapes": _shapes,
}


def scene(seed: int, index: int, size: int) -> np.ndarray:
    """One scene, uint8 [size, size, 3], from its own (seed, index) generator."""
    rng = np.random.default_rng([seed, index])
    kinds = list(SCENE_KINDS.values())
    draw = kinds[int(rng.integers(len(kinds)))]
    s = size * SUPERSAMPLE
    axis = (np.arange(s, dtype=np.float32) + 0.5) / s
    g: Grid = (np.broadcast_to(axis[:, None], (s, s)), np.broadcast_to(axis[None, :], (s, s)))
    canvas = draw(rng, g, s, 1.0 / s).astype(np.float32)
    canvas = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def synthetic_scenes(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n varied procedural scenes, uint8 [n, size, size, 3], deterministic by seed."""
    if n < 0 or size < 4:
        raise ValueError(f"need n >= 0 and size >= 4, got n={n}, size={size}")
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = scene(seed, i, size)
    return out
