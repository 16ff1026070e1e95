"""Base generator weights in the catalog store, content-addressed by their sha256.

`e2gan base --catalog URI` publishes `bases/<sha256[:16]>/base.safetensors` with a small
`base.json` beside it; ConceptAdapters reference the returned URI as `base.weights`, and
`fetch_base` downloads it to a local cache, refusing bytes whose digest does not match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from catalog.core import Catalog
from catalog.errors import CatalogError
from catalog.store import Exists
from e2gan_api.manifest import sha256_file

BASES = "bases"
WEIGHTS = "base.safetensors"
INFO = "base.json"


def publish_base(catalog: Catalog, weights: Path, name: str, meta: dict | None = None) -> dict:
    """Upload the weights (idempotent: same bytes, same key); return {uri, digest, key, size}."""
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise CatalogError(f"{weights}: base weights are published as .safetensors only")
    digest = sha256_file(weights)
    folder = f"{BASES}/{digest[:16]}"
    info = {"name": name, "sha256": digest, "size": weights.stat().st_size, **(meta or {})}
    if catalog.store.read(f"{folder}/{INFO}") is None:
        store = catalog._w  # write-once, under the catalog's guard
        try:
            store.create_file(f"{folder}/{WEIGHTS}", weights)
        except Exists:  # same digest prefix: an earlier upload of these bytes (checked at fetch)
            pass
        try:  # last: marks complete
            store.create(f"{folder}/{INFO}", json.dumps(info, sort_keys=True).encode())
        except Exists:
            pass
    return {"uri": catalog.store.uri_of(f"{folder}/{WEIGHTS}"), "digest": digest, "key": folder, "size": info["size"]}


def fetch_base(uri: str, cache: Path | None = None) -> Path:
    """A local copy of base weights given by path or s3:// URI, digest-checked."""
    if not uri.startswith("s3://"):
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise CatalogError(f"{path}: no such base weights file")
        return path
    from catalog import open_catalog

    folder_uri, _, name = uri.rpartition("/")
    if name != WEIGHTS:
        raise CatalogError(f"{uri}: expected an s3://…/{BASES}/<digest>/{WEIGHTS} URI")
    bucket_and_prefix, _, digest16 = folder_uri.rpartition("/")
    root = bucket_and_prefix.removesuffix(f"/{BASES}")
    store = open_catalog(root).store
    info_raw = store.read(f"{BASES}/{digest16}/{INFO}")
    if info_raw is None:
        raise CatalogError(f"{uri}: no {INFO} beside it (an unfinished or foreign upload)")
    info = json.loads(info_raw)
    cache = Path(cache or os.environ.get("E2GAN_CACHE", Path.home() / ".cache" / "e2gan")) / BASES
    target = cache / f"{info['sha256']}.safetensors"
    if target.is_file() and sha256_file(target) == info["sha256"]:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with open(tmp, "wb") as f:
        for chunk in store.iter_bytes(f"{BASES}/{digest16}/{WEIGHTS}"):
            f.write(chunk)
    if sha256_file(tmp) != info["sha256"]:
        tmp.unlink()
        raise CatalogError(f"{uri}: downloaded bytes do not match sha256 {info['sha256'][:16]}…; refusing them")
    tmp.replace(target)
    return target
