"""s3://bucket/prefix sources: the folder semantics, over an S3 listing.

As sources, objects become seeded random crops exactly as a folder's files do
(`s3_photos` + `crops.photo_crops`), so the same photos give the same pairs from either.
`s3_images` decodes whole objects (center-cropped) for callers that want the photos.

Objects are listed recursively and sorted by key; with n, a seeded choice of n keys is
decoded (in sorted order), drawing further keys to replace any that fail, exactly as
folder_images does, so the same files give the same images (and pair keys) from either.
Downloads run in parallel; corrupt, unreadable or oversized objects are logged, counted
and skipped. Endpoint and credentials come from E2GAN_S3_* (the catalog's settings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from catalog.errors import CatalogError
from trainers.sources.crops import Crops, Photo, photo_crops
from trainers.sources.folder import IMAGE_SUFFIXES, load_image_bytes
from trainers.sources.open import register_source

if TYPE_CHECKING:
    from catalog.s3 import S3Store
    from catalog.settings import S3Settings

log = logging.getLogger(__name__)

THREADS = 8
MAX_OBJECT_BYTES = 64 << 20  # no source photo is this big; refuse to download one that is


def _is_image(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(".") and any(name.lower().endswith(s) for s in IMAGE_SUFFIXES)


def _decode(store: S3Store, key: str, size: int, nbytes: int) -> np.ndarray | None:
    """The image, or None (logged) when it cannot be used."""
    if nbytes > MAX_OBJECT_BYTES:
        log.warning(
            "skipping %s: %d bytes is over the %d-byte limit", store.uri_of(key), nbytes, MAX_OBJECT_BYTES
        )
        return None
    try:
        data = store.read(key)
        if data is None:
            raise FileNotFoundError("deleted after listing")
        return load_image_bytes(data, size)
    except Exception as exc:  # any decoder or read error means a bad object, not a bad run
        log.warning("skipping unreadable image %s: %s", store.uri_of(key), exc)
        return None


def _listed_images(uri: str, settings: S3Settings | None) -> tuple[S3Store, list[tuple[str, int]]]:
    """The store and its image objects as (key, size), sorted by key; ValueError if it cannot be listed."""
    from trainers.synthesis.s3store import open_s3_store

    store = open_s3_store(uri, settings)
    try:
        return store, sorted((o.key, o.size) for o in store.list("") if _is_image(o.key))
    except CatalogError as exc:
        raise ValueError(f"s3 source {uri}: {exc}") from None


def s3_images(
    uri: str, size: int, n: int | None = None, seed: int = 0, settings: S3Settings | None = None
) -> tuple[np.ndarray, int]:
    """Images under an S3 prefix as uint8 [N, size, size, 3], and how many were skipped.

    Raises ValueError when the prefix cannot be listed (bad URI, credentials, endpoint).
    """
    store, listed = _listed_images(uri, settings)
    if n is not None and n < len(listed):
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(listed))]
    else:
        order = list(range(len(listed)))
    want = len(listed) if n is None else n
    images: list[tuple[int, np.ndarray]] = []
    skipped = 0
    pos = 0
    with ThreadPoolExecutor(THREADS) as pool:
        while len(images) < want and pos < len(order):
            # Fetch exactly as many as still needed: the result equals a sequential scan.
            batch = order[pos : pos + want - len(images)]
            pos += len(batch)
            decoded = pool.map(lambda i: _decode(store, listed[i][0], size, listed[i][1]), batch)
            for i, image in zip(batch, decoded, strict=True):
                if image is None:
                    skipped += 1
                else:
                    images.append((i, image))
    images.sort(key=lambda item: item[0])
    out = np.stack([img for _, img in images]) if images else np.empty((0, size, size, 3), np.uint8)
    return out, skipped


def s3_photos(uri: str, settings: S3Settings | None = None) -> list[Photo]:
    """The image objects under an S3 prefix (sorted by key) as photos named by their key.

    Raises ValueError when the prefix cannot be listed (bad URI, credentials, endpoint).
    """
    store, listed = _listed_images(uri, settings)

    def reader(key: str, nbytes: int) -> Callable[[], bytes]:
        def read() -> bytes:
            if nbytes > MAX_OBJECT_BYTES:
                raise ValueError(f"{nbytes} bytes is over the {MAX_OBJECT_BYTES}-byte limit")
            data = store.read(key)
            if data is None:
                raise FileNotFoundError("deleted after listing")
            return data

        return read

    return [Photo(name=key, read=reader(key, nbytes)) for key, nbytes in listed]


@register_source("s3")
def _open_s3(uri: str, n: int, size: int, seed: int, scale: tuple[float, float]) -> Crops:
    return photo_crops(s3_photos(uri), n, size, seed, scale)
