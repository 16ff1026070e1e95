"""Built-in procedural teachers: deterministic CPU edits, one registered function each.

They stand in for a diffusion teacher in tests and in the embedded default: fast, exact
and learnable by a small conv net (mostly local operations). Randomness (grain, snow)
comes only from the per-image seed, so an edit never depends on batching. Bump an
effect's version whenever its output changes: the version is part of the teacher id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trainers.teachers import ops
from trainers.teachers.base import TeacherUnavailable, check_images, per_image_seeds

# fn(images float32 [N, H, W, 3] in [0, 1], one generator per image) -> same shape.
EffectFn = Callable[[np.ndarray, list[np.random.Generator]], np.ndarray]


@dataclass(frozen=True)
class ProceduralEffect:
    name: str
    version: int
    description: str
    fn: EffectFn


PROCEDURAL_TEACHERS: dict[str, ProceduralEffect] = {}


def register_procedural(name: str, version: int = 1, description: str = "") -> Callable[[EffectFn], EffectFn]:
    """Register an effect under a concept name (a DNS label, like concept names)."""

    def wrap(fn: EffectFn) -> EffectFn:
        if name in PROCEDURAL_TEACHERS:
            raise ValueError(f"procedural teacher {name!r} registered twice")
        PROCEDURAL_TEACHERS[name] = ProceduralEffect(name, version, description, fn)
        return fn

    return wrap


def _scale(x: np.ndarray) -> float:
    """Effects are tuned at 64 px; kernel sizes grow with the image."""
    return min(x.shape[1], x.shape[2]) / 64.0


@register_procedural("pencil-sketch", description="grey pencil drawing on warm paper (colour dodge)")
def _pencil_sketch(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    g = ops.gray(x)
    inv_blur = ops.blur(1.0 - g, 1.5 * _scale(x))
    sketch = np.clip(g / np.maximum(1.0 - inv_blur, 1e-3), 0.0, 1.0) ** 2.0
    paper = np.array([0.98, 0.96, 0.9], dtype=np.float32)
    return sketch[..., None] * paper


@register_procedural("old-photo", description="sepia, faded contrast, film grain and vignette")
def _old_photo(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    sepia = np.array([[0.393, 0.349, 0.272], [0.769, 0.686, 0.534], [0.189, 0.168, 0.131]], dtype=np.float32)
    y = ops.blur(x, 0.5 * _scale(x)) @ sepia
    y = 0.12 + 0.75 * np.clip(y, 0.0, 1.0)
    y = y + 0.03 * ops.noise(rngs, *x.shape[1:3])[..., None]
    return y * (1.0 - 0.6 * ops.radial(*x.shape[1:3]) ** 2)[None, :, :, None]


@register_procedural("cartoon", description="flat posterized colours with dark outlines")
def _cartoon(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    smooth = ops.blur(x, 0.8 * _scale(x))
    flat = ops.posterize(ops.saturate(smooth, 1.3), 5)
    outline = np.clip((ops.edges(ops.gray(smooth)) - 0.04) / 0.06, 0.0, 1.0)
    return flat * (1.0 - outline[..., None])


@register_procedural("winter", description="cold blue tint, pale light and falling snow")
def _winter(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    y = ops.saturate(x, 0.55) * np.array([0.85, 0.95, 1.1], dtype=np.float32) + 0.12
    # Snow: sparse specks, softened a little so they read as flakes, not dead pixels.
    specks = (ops.uniform(rngs, *x.shape[1:3]) < 0.025).astype(np.float32)
    snow = np.clip(ops.blur(specks, 0.6 * _scale(x)) * 2.5, 0.0, 1.0)[..., None]
    return y * (1.0 - snow) + snow


@register_procedural("negative", description="inverted colours")
def _negative(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    return 1.0 - x


@register_procedural("vignette", description="dark, slightly warm corners")
def _vignette(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    falloff = np.clip(1.0 - 1.1 * ops.radial(*x.shape[1:3]) ** 2.2, 0.0, 1.0)[None, :, :, None]
    return x * np.array([1.04, 1.0, 0.94], dtype=np.float32) * falloff


@register_procedural("van-gogh", description="swirling, embossed, saturated brush strokes")
def _van_gogh(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    h, w = x.shape[1:3]
    s = _scale(x)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / (8.0 * s)
    # A small displacement field of interleaved whirls: local, so it stays learnable.
    swirled = ops.warp(x, 1.5 * s * np.sin(xx + 0.5 * np.cos(yy)), 1.5 * s * np.cos(yy + 0.5 * np.sin(xx)))
    y = ops.posterize(ops.saturate(swirled, 1.7), 7)
    gx, gy = ops.sobel(ops.gray(ops.blur(swirled, 0.6 * s)))
    emboss = (gx + gy)[..., None] * 1.6
    return y + emboss + np.array([0.0, 0.02, 0.06], dtype=np.float32)


@register_procedural("blueprint", description="white line drawing on blueprint blue")
def _blueprint(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    lines = np.clip(ops.edges(ops.gray(ops.blur(x, 0.6 * _scale(x)))) * 10.0, 0.0, 1.0)[..., None]
    paper = np.array([0.07, 0.22, 0.55], dtype=np.float32)
    ink = np.array([0.92, 0.96, 1.0], dtype=np.float32)
    return paper * (1.0 - lines) + ink * lines


THERMAL_STOPS = np.array(
    [
        [0.0, 0.0, 0.05],
        [0.2, 0.0, 0.55],
        [0.75, 0.05, 0.55],
        [1.0, 0.35, 0.0],
        [1.0, 0.85, 0.1],
        [1.0, 1.0, 0.9],
    ],
    dtype=np.float32,
)


@register_procedural("thermal", description="heat-map false colour of brightness")
def _thermal(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    return ops.colormap(ops.blur(ops.gray(x), 1.0 * _scale(x)), THERMAL_STOPS)


@register_procedural("night", description="dark blue night with glowing highlights")
def _night(x: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    dark = ops.saturate(x, 0.6) ** 1.8 * 0.45 * np.array([0.7, 0.85, 1.25], dtype=np.float32)
    lum = ops.gray(x)
    glow = ops.blur(np.clip((lum - 0.75) / 0.25, 0.0, 1.0), 1.2 * _scale(x))[..., None]
    lights = glow * np.array([1.0, 0.85, 0.5], dtype=np.float32)
    return dark + lights + 0.015 * ops.noise(rngs, *x.shape[1:3])[..., None]


class ProceduralTeacher:
    """A registered procedural effect behind the Teacher interface (the prompt is ignored)."""

    def __init__(self, name: str) -> None:
        if name not in PROCEDURAL_TEACHERS:
            raise TeacherUnavailable(
                f"no procedural teacher named {name!r}; known: {', '.join(sorted(PROCEDURAL_TEACHERS))} "
                "(set teacher.name, or use teacher.kind instruct-pix2pix or sdedit with a model)"
            )
        self.effect = PROCEDURAL_TEACHERS[name]

    @property
    def id(self) -> str:
        return f"procedural/{self.effect.name}@{self.effect.version}"

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        check_images(images)
        seeds = per_image_seeds(seed, len(images))
        if len(images) == 0:
            return images.copy()
        rngs = [np.random.default_rng(s) for s in seeds]
        out = self.effect.fn(images.astype(np.float32) / 255.0, rngs)
        return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def __repr__(self) -> str:
        return f"ProceduralTeacher({self.id})"
