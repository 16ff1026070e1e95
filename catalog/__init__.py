"""The adapter catalog: versioned, digest-checked adapters in a local folder or on S3.

    from catalog import open_catalog, CatalogError
    cat = open_catalog("s3://adapters/prod")   # S3 settings from E2GAN_S3_* environment
    entry = cat.publish(folder, base_digest=..., concept="pencil-sketch")

No torch, no kubernetes here: the operator image uses this package too.
"""

from __future__ import annotations

from pathlib import Path

from catalog.core import Catalog
from catalog.errors import CatalogError, SeriesTaken
from catalog.models import IndexEntry, VerifyReport
from catalog.settings import S3Settings
from catalog.uri import parse_uri

__all__ = ["Catalog", "CatalogError", "IndexEntry", "S3Settings", "SeriesTaken", "VerifyReport", "open_catalog"]


def open_catalog(uri: str | Path, *, settings: S3Settings | None = None) -> Catalog:
    """A catalog at a local folder, file:// URL or s3://bucket/prefix (S3 settings from the environment)."""
    where = parse_uri(uri)
    if where.scheme == "s3":
        from catalog.s3 import S3Store  # boto3 only when S3 is used

        store = S3Store(where.bucket, where.prefix, settings or S3Settings.from_env())
        return Catalog(store, str(where))
    from catalog.local import LocalStore

    assert where.path is not None
    return Catalog(LocalStore(where.path), str(where.path))
