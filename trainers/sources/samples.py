"""builtin://photos: real photographs that ship inside installed packages, offline.

scikit-learn ships two (a temple in China, a flower) and scikit-image a dozen more
(an astronaut, a cat, coffee, a rocket, a motorcycle...). They are real camera images,
so the built-in base and the tests can see photographs without any download. Only
colour photographs are used (no microscopy, textures or synthetic test cards).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trainers.sources.crops import Photo

# package -> files under its data folder; missing packages or files are simply absent.
SAMPLE_PHOTOS: dict[str, tuple[str, ...]] = {
    "sklearn": ("datasets/images/china.jpg", "datasets/images/flower.jpg"),
    "skimage": (
        "data/astronaut.png",
        "data/chelsea.png",
        "data/coffee.png",
        "data/rocket.jpg",
        "data/motorcycle_left.png",
        "data/hubble_deep_field.jpg",
    ),
}


def _package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_photo_paths() -> list[Path]:
    """The installed sample photographs, in a fixed order."""
    paths = []
    for package, files in SAMPLE_PHOTOS.items():
        root = _package_root(package)
        if root is None:
            continue
        paths.extend(root / f for f in files if (root / f).is_file())
    return paths


def sample_photos() -> list[Photo]:
    paths = sample_photo_paths()
    if not paths:
        raise FileNotFoundError("builtin://photos needs scikit-learn or scikit-image installed (they ship the photos)")
    return [Photo(name=f"{p.parent.name}/{p.name}", read=p.read_bytes) for p in paths]
