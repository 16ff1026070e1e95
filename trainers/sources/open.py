"""open_source: one entry point for every source URI, dispatched on its scheme.

Schemes register an opener (peft-style), so adding one (s3) never edits a big if/elif.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from trainers.sources.crops import DEFAULT_CROP_SCALE, Crops, Photo, check_scale, photo_crops
from trainers.sources.folder import list_images
from trainers.sources.hashing import source_hashes
from trainers.sources.samples import base_photos, sample_photos
from trainers.sources.scenes import synthetic_scenes


@dataclass
class SourceImages:
    """Source images of one run with their content hashes and the photo each came from."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    hashes: list[str]  # source_hash of each image
    uri: str
    skipped: int = 0  # unreadable files skipped
    groups: list[str] = field(default_factory=list)  # the photo (sha256) of each image; splits go by it
    boxes: list[dict] = field(default_factory=list)  # per crop: photo, name, box (fractions), flip
    photos: int = 0  # distinct photos (groups) the images came from

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: list[int]) -> SourceImages:
        """These sources only, in the given order (what the teacher is asked to edit)."""
        return SourceImages(
            images=self.images[indices],
            hashes=[self.hashes[i] for i in indices],
            uri=self.uri,
            skipped=self.skipped,
            groups=[self.groups[i] for i in indices] if self.groups else [],
            boxes=[self.boxes[i] for i in indices] if self.boxes else [],
            photos=len(set(self.groups[i] for i in indices)) if self.groups else 0,
        )


# An opener gets the URI, n, size, seed and crop scale and returns the crops.
Opener = Callable[[str, int, int, int, tuple[float, float]], Crops]

SOURCE_OPENERS: dict[str, Opener] = {}


def register_source(scheme: str) -> Callable[[Opener], Opener]:
    """Register the opener of a URI scheme ('' is a plain local path)."""

    def wrap(fn: Opener) -> Opener:
        SOURCE_OPENERS[scheme] = fn
        return fn

    return wrap


BUILTIN_SOURCES: dict[str, Callable[[int, int, int], np.ndarray]] = {"scenes": synthetic_scenes}


def builtin_names() -> list[str]:
    """Every builtin://NAME a source may be."""
    return [*BUILTIN_SOURCES, "photos", "base-mix"]


@register_source("builtin")
def _open_builtin(uri: str, n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    name = urlparse(uri).netloc
    if name == "photos":  # real photographs shipped by installed packages, as crops
        return photo_crops(sample_photos(), n, size, seed, scale)
    if name == "base-mix":
        return _base_mix(n, size, seed, scale)
    if name not in BUILTIN_SOURCES:
        raise ValueError(f"unknown builtin source {uri!r}; known: {', '.join(f'builtin://{k}' for k in builtin_names())}")
    images = BUILTIN_SOURCES[name](n, size, seed)
    hashes = source_hashes(images)  # every procedural scene is a photo of its own
    return Crops(images=images, groups=hashes, photos=len(set(hashes)))


def _base_mix(n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    """builtin://base-mix, sources for a base: half procedural scenes, half crops of the
    photos builtin://photos leaves out, so a base can see photographs while builtin://photos
    stays unseen by it. Every scene is a group of its own."""
    photos = photo_crops(base_photos(), n // 2, size, seed, scale)
    scenes = synthetic_scenes(n - len(photos.images), size, seed)
    hashes = source_hashes(scenes)
    boxes = [{"photo": h, "name": "builtin://scenes", "box": [0.0, 0.0, 1.0, 1.0], "flip": False} for h in hashes]
    return Crops(
        images=np.concatenate([photos.images, scenes]),
        groups=[*photos.groups, *hashes],
        boxes=[*photos.boxes, *boxes],
        skipped=photos.skipped,
        photos=photos.photos + len(set(hashes)),
    )


def folder_photos(root: Path) -> list[Photo]:
    """The image files of a folder (recursive, sorted) as photos named by their relative path."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    return [Photo(name=p.relative_to(root).as_posix(), read=p.read_bytes) for p in list_images(root)]


@register_source("")
def _open_folder(uri: str, n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    return photo_crops(folder_photos(Path(uri)), n, size, seed, scale)


@register_source("file")
def _open_file_uri(uri: str, n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    parsed = urlparse(uri)
    return photo_crops(folder_photos(Path(parsed.netloc + parsed.path)), n, size, seed, scale)


@register_source("s3")
def _open_s3(uri: str, n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    # Placeholder until trainers/sources/s3.py registers the real opener for "s3".
    raise NotImplementedError(
        f"s3:// sources are not implemented yet ({uri}); copy the images to a local folder "
        "and give its path as data.source"
    )


def open_source(
    uri: str, n: int, size: int, seed: int = 0, crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE
) -> SourceImages:
    """n source images of size x size from uri, with their hashes and photos.

    uri is builtin://scenes, a local folder (or file://folder) or s3://bucket/prefix; photos
    give n seeded random crops (see `crops.py`). Raises ValueError when the source gives no
    image at all.
    """
    check_scale(crop_scale)
    scheme = urlparse(uri).scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme not in SOURCE_OPENERS:
        raise ValueError(
            f"unsupported source {uri!r}; use builtin://scenes, a local folder or s3://bucket/prefix"
        )
    crops = SOURCE_OPENERS[scheme](uri, n, size, seed, crop_scale)
    if len(crops.images) == 0:
        raise ValueError(f"source {uri!r} gave no readable image ({crops.skipped} skipped)")
    return SourceImages(
        images=crops.images,
        hashes=source_hashes(crops.images),
        uri=uri,
        skipped=crops.skipped,
        groups=crops.groups,
        boxes=crops.boxes,
        photos=crops.photos,
    )
