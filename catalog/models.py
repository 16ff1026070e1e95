"""The catalog's JSON documents: catalog.json, claims, version manifests, series indexes, reports."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

CATALOG_FORMAT = "e2gan-catalog/v2"
VERSION_FORMAT = "e2gan-catalog-version/v1"
SERIES_FORMAT = "e2gan-catalog-series/v1"
GUARDS = ("conditional", "lock")
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
    owner: str = Field(default="", description="k8s:<namespace>/<name>/<uid> or cli:<user>")
    catalog_uri: str = Field(default="", description="URI of the catalog the version was published to")
    manifest_digest: str = Field(default="", description="sha256:<hex> of version.json: `pull …@sha256:…`")

    @property
    def number(self) -> int:
        return version_number(self.version)


class CatalogConfig(BaseModel):
    """catalog.json, written once at `e2gan catalog init`: every writer follows it."""

    model_config = ConfigDict(extra="ignore")
    format: str = CATALOG_FORMAT
    guard: str = Field(
        default="conditional",
        description="conditional: If-None-Match/If-Match writes; lock: lock objects (servers without conditions)",
    )
    reservation_ttl_s: float = Field(default=3600.0, gt=0, description="a claim's lifetime; gc's minimum grace")
    created: str = ""


class Claim(BaseModel):
    """vN/claim.json: the write-once create that takes number N for one publish attempt.

    It stays after a delete or an abandoned upload, so a number is never given twice."""

    model_config = ConfigDict(extra="ignore")
    token: str
    owner: str
    digest: str
    created: float = Field(description="server time of the claim (Unix)")
    expires: float = Field(description="server time after which the attempt may no longer commit")


class VersionManifest(BaseModel):
    """vN/version.json: creating it (write-once) commits the version; it describes it whole."""

    model_config = ConfigDict(extra="ignore")
    format: str = VERSION_FORMAT
    entry: IndexEntry


class SeriesIndex(BaseModel):
    """adapters/<base16>/<concept>/index.json: a cache of one series, rebuilt from manifests."""

    model_config = ConfigDict(extra="ignore")
    format: str = SERIES_FORMAT
    latest: int = Field(default=0, description="highest committed number (0: none)")
    versions: list[IndexEntry] = Field(default_factory=list)
    dead: list[int] = Field(
        default_factory=list, description="numbers claimed but never committed (expired) or deleted"
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
    kept: list[str] = Field(default_factory=list, description="uncommitted folders left alone (younger than grace)")
    reservations: int = Field(default=0, description="expired claims whose uploads were removed")
