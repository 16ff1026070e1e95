"""Parse a catalog URI: a local folder, file:// URL, or s3://bucket/prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from catalog.errors import CatalogError

# S3 bucket naming rules (lowercase, 3-63 chars, no leading/trailing dot or dash).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class CatalogURI:
    """Where a catalog lives: `path` for local folders, `bucket`/`prefix` for S3."""

    scheme: str  # "file" or "s3"
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""  # no leading or trailing slash; "" for the bucket root

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return str(self.path)


def parse_uri(uri: str | Path) -> CatalogURI:
    """Classify `uri`; raise CatalogError for anything else (http://, empty, bad bucket)."""
    text = str(uri).strip()
    if not text:
        raise CatalogError("catalog URI is empty")
    if text.startswith("s3://"):
        parsed = urlparse(text)
        if parsed.query or parsed.fragment or "@" in parsed.netloc:
            # Credentials and endpoints come from the environment, never from the URI.
            raise CatalogError("catalog URI: s3://bucket/prefix only (no query, fragment or credentials)")
        if not _BUCKET.match(parsed.netloc):
            raise CatalogError(f"catalog URI: invalid bucket name {parsed.netloc!r}")
        prefix = parsed.path.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise CatalogError(f"catalog URI: invalid prefix {prefix!r}")
        return CatalogURI("s3", bucket=parsed.netloc, prefix=prefix)
    if text.startswith("file://"):
        return CatalogURI("file", path=Path(unquote(urlparse(text).path)).resolve())
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        raise CatalogError(
            f"catalog URI: unsupported scheme in {text!r} (use a folder or s3://bucket/prefix)"
        )
    return CatalogURI("file", path=Path(text).expanduser().resolve())
