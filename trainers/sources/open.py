"""open_source: one entry point for every source URI, dispatched on its scheme.

Schemes register an opener (peft-style), so adding one (s3) never edits a big if/elif.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from trainers.sources.folder import folder_images
from trainers.sources.hashing import source_hashes
from trainers.sources.scenes import synthetic_scenes


@dataclass
class SourceImages:
    """Source images of one run with their content hashes."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    hashes: list[str]  # source_hash of each image
    uri: str
    skipped: int = 0  # unreadable files skipped

    def __len__(self) -> int:
        return len(self.images)


# An opener gets the parsed URI, n, size and seed and returns (images, skipped).
Opener = Callable[[str, int, int, int], tuple[np.ndarray, int]]

SOURCE_OPENERS: dict[str, Opener] = {}


def register_source(scheme: str) -> Callable[[Opener], Opener]:
    """Register the opener of a URI scheme ('' is a plain local path)."""

    def wrap(fn: Opener) -> Opener:
        SOURCE_OPENERS[scheme] = fn
        return fn

    return wrap


BUILTIN_SOURCES: dict[str, Callable[[int, int, int], np.ndarray]] = {"scenes": synthetic_scenes}


@register_source("builtin")
def _open_builtin(uri: str, n: int, size: int, seed: int) -> tuple[np.ndarray, int]:
    name = urlparse(uri).netloc
    if name not in BUILTIN_SOURCES:
        raise ValueError(
            f"unknown builtin source {uri!r}; known: {', '.join(f'builtin://{k}' for k in BUILTIN_SOURCES)}"
        )
    return BUILTIN_SOURCES[name](n, size, seed), 0


@register_source("")
def _open_folder(uri: str, n: int, size: int, seed: int) -> tuple[np.ndarray, int]:
    return folder_images(uri, size, n=n, seed=seed)


@register_source("file")
def _open_file_uri(uri: str, n: int, size: int, seed: int) -> tuple[np.ndarray, int]:
    parsed = urlparse(uri)
    return folder_images(Path(parsed.netloc + parsed.path), size, n=n, seed=seed)


@register_source("s3")
def _open_s3(uri: str, n: int, size: int, seed: int) -> tuple[np.ndarray, int]:
    # Placeholder until trainers/sources/s3.py registers the real opener for "s3".
    raise NotImplementedError(
        f"s3:// sources are not implemented yet ({uri}); copy the images to a local folder "
        "and give its path as data.source"
    )


def open_source(uri: str, n: int, size: int, seed: int = 0) -> SourceImages:
    """Up to n source images of size x size from uri, with their hashes.

    uri is builtin://scenes, a local folder (or file://folder) or s3://bucket/prefix.
    Raises ValueError when the source gives no image at all.
    """
    scheme = urlparse(uri).scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme not in SOURCE_OPENERS:
        raise ValueError(
            f"unsupported source {uri!r}; use builtin://scenes, a local folder or s3://bucket/prefix"
        )
    images, skipped = SOURCE_OPENERS[scheme](uri, n, size, seed)
    if len(images) == 0:
        raise ValueError(f"source {uri!r} gave no readable image ({skipped} skipped)")
    return SourceImages(images=images, hashes=source_hashes(images), uri=uri, skipped=skipped)
