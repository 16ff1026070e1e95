"""The exceptions the catalog raises; callers catch CatalogError and nothing else."""

from __future__ import annotations


class CatalogError(Exception):
    """A catalog operation failed; the message is one line, names the object, never a secret."""


class ConflictError(CatalogError):
    """A conditional write lost a race; the caller re-reads and retries."""


class SeriesTaken(CatalogError):
    """A series (base digest, concept) belongs to another owner."""

    def __init__(self, series: str, owner: str) -> None:
        super().__init__(f"series {series} is owned by {owner}; publish under another concept or ask its owner")
        self.series = series
        self.owner = owner
