"""Local folders of JPEG/PNG images: center-cropped, resized, corrupt files skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def list_images(root: Path) -> list[Path]:
    """Image files under root (recursive), in a stable sorted order; hidden files skipped."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def fit_image(img: Image.Image, size: int) -> np.ndarray:
    """Center-crop to a square and resize: uint8 [size, size, 3] RGB.

    EXIF rotation is applied and transparency is composited on white, so a PNG with an
    alpha channel does not turn its transparent parts black.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("RGB")
    img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(img, dtype=np.uint8).copy()


def load_image_file(path: Path, size: int) -> np.ndarray:
    """Decode one file into uint8 [size, size, 3]; raises on unreadable data."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
        return fit_image(img, size)


def load_image_bytes(data: bytes, size: int) -> np.ndarray:
    """Decode in-memory image bytes (for object stores) into uint8 [size, size, 3]."""
    import io

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))
        return fit_image(img, size)


def folder_images(path: str | Path, size: int, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """Images of a folder (recursive) as uint8 [N, size, size, 3], and how many were skipped.

    With n, a seeded random choice of n files is decoded (in their sorted order), drawing
    further files to replace any that fail; fewer than n come back when the folder runs
    out. Unreadable or corrupt files are logged, counted and skipped, never raised.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = list_images(root)
    if n is not None and n < len(files):
        order = np.random.default_rng(seed).permutation(len(files))
    else:
        order = np.arange(len(files))
    want = len(files) if n is None else n
    images: list[tuple[int, np.ndarray]] = []
    skipped = 0
    for i in order:
        if len(images) >= want:
            break
        try:
            images.append((int(i), load_image_file(files[i], size)))
        except Exception as exc:  # any decoder error means a bad file, not a bad run
            skipped += 1
            log.warning("skipping unreadable image %s: %s", files[i], exc)
    images.sort(key=lambda item: item[0])
    out = np.stack([img for _, img in images]) if images else np.empty((0, size, size, 3), np.uint8)
    return out, skipped
