"""Seeded random crops of photos: `data.pairs` counts pairs, not files.

A folder of 10 photos yields as many distinct training sources as asked for: each source
is a square crop (a random scale of the photo's short side, at a random position),
optionally mirrored, resized to the training resolution. A crop is identified by
(the photo's sha256, its box as fractions of the photo, flip), and a photo's crops depend
only on the seed and the photo's own bytes, so adding files to a folder never changes
the crops of the others. `groups` names each crop's photo, so splits can be made by
photo and the test photos stay unseen.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

DEFAULT_CROP_SCALE = (0.5, 1.0)


@dataclass(frozen=True)
class Photo:
    """One photo file: a name for messages and a way to read its bytes."""

    name: str
    read: Callable[[], bytes]


@dataclass
class Crops:
    images: np.ndarray  # uint8 [N, size, size, 3]
    groups: list[str]  # sha256 of the photo each crop came from
    boxes: list[dict] = field(default_factory=list)  # {"photo", "name", "box", "flip"} per crop
    skipped: int = 0  # photos that could not be read or decoded
    photos: int = 0  # photos the crops came from


def check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    lo, hi = scale
    if not (0.0 < lo <= hi <= 1.0):
        raise ValueError(f"crop scale {lo}..{hi} must satisfy 0 < min <= max <= 1 (for example 0.5..1.0)")
    return float(lo), float(hi)


def _decode(data: bytes, short_side: int) -> Image.Image:
    """RGB at a reduced scale where the format allows it (JPEG draft), EXIF-rotated, alpha on white."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (short_side, short_side))
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return img.convert("RGB")


def _crop_boxes(rng: np.random.Generator, width: int, height: int, count: int, scale: tuple[float, float]) -> list[tuple[tuple[float, float, float, float], bool]]:
    """`count` square boxes as fractions of the photo, with a flip flag each."""
    short = min(width, height)
    out = []
    for _ in range(count):
        side = rng.uniform(*scale) * short
        x0 = rng.uniform(0, width - side)
        y0 = rng.uniform(0, height - side)
        box = (x0 / width, y0 / height, (x0 + side) / width, (y0 + side) / height)
        out.append((tuple(round(v, 6) for v in box), bool(rng.random() < 0.5)))
    return out


def _crop(img: Image.Image, box: tuple[float, float, float, float], flip: bool, size: int) -> np.ndarray:
    w, h = img.size
    pixels = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
    out = img.resize((size, size), Image.Resampling.BICUBIC, box=pixels, reducing_gap=2.0)
    if flip:
        out = ImageOps.mirror(out)
    return np.asarray(out, dtype=np.uint8).copy()


def photo_crops(
    photos: Sequence[Photo], n: int, size: int, seed: int = 0, scale: tuple[float, float] = DEFAULT_CROP_SCALE
) -> Crops:
    """n crops spread evenly over the photos (in their given order); unreadable photos are skipped, counted,
    and their share goes to the readable ones."""
    lo, hi = check_scale(scale)
    short_side = int(np.ceil(size / lo))  # enough pixels for the smallest crop
    images: list[np.ndarray] = []
    groups: list[str] = []
    boxes: list[dict] = []
    good: list[tuple[Photo, str]] = []
    skipped = 0
    share = [n // len(photos) + (1 if i < n % len(photos) else 0) for i in range(len(photos))] if photos else []
    deficit = 0
    rounds: dict[str, int] = {}

    def emit(photo: Photo, digest: str, img: Image.Image, count: int) -> None:
        r = rounds.get(digest, 0)
        rounds[digest] = r + 1
        rng = np.random.default_rng([seed, int(digest[:15], 16), r])
        for box, flip in _crop_boxes(rng, *img.size, count, (lo, hi)):
            images.append(_crop(img, box, flip, size))
            groups.append(digest)
            boxes.append({"photo": digest, "name": photo.name, "box": list(box), "flip": flip})

    for photo, count in zip(photos, share, strict=True):
        try:
            data = photo.read()
            img = _decode(data, short_side)
        except Exception as exc:  # any read or decoder error means a bad file, not a bad run
            skipped += 1
            deficit += count
            log.warning("skipping unreadable image %s: %s", photo.name, exc)
            continue
        digest = hashlib.sha256(data).hexdigest()
        good.append((photo, digest))
        emit(photo, digest, img, count + deficit)
        deficit = 0
    if deficit and good:  # the last photos were unreadable: the first readable one takes their share
        photo, digest = good[0]
        emit(photo, digest, _decode(photo.read(), short_side), deficit)
    out = np.stack(images) if images else np.empty((0, size, size, 3), np.uint8)
    return Crops(images=out, groups=groups, boxes=boxes, skipped=skipped, photos=len(good))
