"""The catalog's JSON documents: index.json entries, reservations and reports."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

INDEX_FORMAT = "e2gan-catalog-index/v1"
_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def version_number(version: str) -> int:
    """3 for "v3"; 0 for anything else (never published by us)."""
    match = _VERSION.match(version)
    return int(match.group(1)) if match else 0


class FileRef(BaseModel):
    """One stored file of a version: what a puller must receive."""

    model_config = ConfigDict(extra="ignore")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    uri: str = Field(description="full URI of the object (s3://… or a local path)")


class IndexEntry(BaseModel):
    """One published adapter version, as listed in index.json."""

    model_config = ConfigDict(extra="ignore")
    concept: str
    version: str = Field(description='"v1", "v2", … per (base model, concept)')
    base_model_digest: str
    digest: str = Field(description="content digest of the adapter files (AdapterManifest.content_digest)")
    key: str = Field(
        description="folder of the version inside the catalog: adapters/<base16>/<concept>/<version>"
    )
    uri: str = Field(description="full URI of the version folder")
    files: dict[str, FileRef] = Field(description="every stored file, manifest.json included")
    size: int = Field(ge=0, description="bytes of all files together")
    metrics: dict[str, float | str | None] = Field(default_factory=dict)
    ranks: dict[str, int] = Field(default_factory=dict)
    prompt: str = ""
    created: str = Field(description="UTC time of publication, ISO 8601")

    @property
    def number(self) -> int:
        return version_number(self.version)


class Reservation(BaseModel):
    """A version number held by a publisher while it uploads; invisible to readers."""

    model_config = ConfigDict(extra="ignore")
    concept: str
    base_model_digest: str
    version: str
    digest: str
    token: str = Field(description="random id of the publish attempt")
    expires: float = Field(description="Unix time after which gc may reclaim the number and files")


class IndexDocument(BaseModel):
    """The whole index.json: published entries and in-flight reservations."""

    model_config = ConfigDict(extra="ignore")
    format: str = INDEX_FORMAT
    updated: str = ""
    adapters: list[IndexEntry] = Field(default_factory=list)
    reservations: list[Reservation] = Field(default_factory=list)
    last_versions: dict[str, int] = Field(
        default_factory=dict,
        description="highest number ever given per '<base16>/<concept>', so none is reused",
    )


class Problem(BaseModel):
    """One failed check of `verify`."""

    concept: str
    version: str
    base_model_digest: str
    file: str
    problem: str = Field(description="missing, size mismatch or sha256 mismatch, in words")


class VerifyReport(BaseModel):
    """What `verify` recomputed and what did not match."""

    versions: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[Problem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class GcReport(BaseModel):
    """What `gc` removed."""

    pruned: list[IndexEntry] = Field(default_factory=list, description="versions beyond `keep`")
    orphans: list[str] = Field(default_factory=list, description="folders of unpublished, abandoned uploads")
    reservations: int = Field(default=0, description="expired reservations dropped from the index")
