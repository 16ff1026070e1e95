"""Real photographs that ship inside installed packages, offline.

builtin://photos: scikit-learn ships two (a temple in China, a flower) and scikit-image
more (an astronaut, a cat, coffee, a rocket, a motorcycle...). They are real camera
images, so users and tests can try photographs without any download. Only colour
photographs of scenes (no microscopy, textures or synthetic test cards).

builtin://base-mix, a source for training bases, uses the *other* photos scikit-image
ships (grey photos, textures, microscopy: `BASE_PHOTOS`), never these, so a distill on
builtin://photos is scored on photos such a base never saw.
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


# The photos of builtin://base-mix (beside its scenes); disjoint from SAMPLE_PHOTOS. motorcycle_right is left out: it is the same scene as motorcycle_left.
BASE_PHOTOS: dict[str, tuple[str, ...]] = {
    "skimage": (
        "data/camera.png",
        "data/gravel.png",
        "data/brick.png",
        "data/grass.png",
        "data/moon.png",
        "data/coins.png",
        "data/cell.png",
        "data/retina.jpg",
        "data/ihc.png",
    ),
}


def _package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_photo_paths(table: dict[str, tuple[str, ...]] = SAMPLE_PHOTOS) -> list[Path]:
    """The installed sample photographs of `table`, in a fixed order."""
    paths = []
    for package, files in table.items():
        root = _package_root(package)
        if root is None:
            continue
        paths.extend(root / f for f in files if (root / f).is_file())
    return paths


def _photos(paths: list[Path], uri: str, needs: str) -> list[Photo]:
    if not paths:
        raise FileNotFoundError(f"{uri} needs {needs} installed (it ships the photos)")
    return [Photo(name=f"{p.parent.name}/{p.name}", read=p.read_bytes) for p in paths]


def sample_photos() -> list[Photo]:
    return _photos(sample_photo_paths(), "builtin://photos", "scikit-learn or scikit-image")


def base_photos() -> list[Photo]:
    return _photos(sample_photo_paths(BASE_PHOTOS), "builtin://base-mix", "scikit-image")
