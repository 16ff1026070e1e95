"""The one exception the catalog raises; callers catch this and nothing else."""

from __future__ import annotations


class CatalogError(Exception):
    """A catalog operation failed; the message is one line, names the object, never a secret."""


class ConflictError(CatalogError):
    """A conditional write lost a race; the caller re-reads and retries."""
