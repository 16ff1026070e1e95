"""The catalog: publish, list, pull, verify, delete and prune adapters over any Store.

Layout (every fact is in a file; nothing in tags or headers):
  catalog.json                                  guard mode and claim TTL, written once at init
  adapters/<base16>/<concept>/owner.json        the series' owner, written once by its first publish
  adapters/<base16>/<concept>/index.json        a cache of the series (rebuilt from the manifests)
  adapters/<base16>/<concept>/digests/<sha>.json which number holds this content (dedupe)
  adapters/<base16>/<concept>/vN/claim.json     takes number N (write-once); stays as a tombstone
  adapters/<base16>/<concept>/vN/<files>        the adapter, a plain PEFT folder (write-once files)
  adapters/<base16>/<concept>/vN/version.json   the version manifest: creating it commits vN

Publish: claim vN with a write-once create (taken: try N+1), upload every file write-once,
HEAD them all, then create version.json (write-once). Nothing is ever overwritten, so losing
every index.json loses nothing: readers rebuild a series from its manifests.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from catalog.checks import (
    base_folder,
    check_adapter_folder,
    check_concept,
    check_manifest_digest,
    check_progress_key,
    parse_version,
)
from catalog.errors import CatalogError, ConflictError, SeriesTaken
from catalog.models import (
    CATALOG_FORMAT,
    GUARDS,
    CatalogConfig,
    Claim,
    FileRef,
    GcReport,
    IndexEntry,
    Problem,
    SeriesIndex,
    VerifyReport,
    VersionManifest,
    version_number,
)
from catalog.store import Exists, MissingObject, Store
from e2gan_api.manifest import ADAPTER_FILES, MANIFEST_NAME, AdapterManifest

log = logging.getLogger(__name__)

CONFIG_KEY = "catalog.json"
ADAPTERS = "adapters"
PROGRESS = "progress"
CLAIM = "claim.json"
VERSION_FILE = "version.json"
SERIES_INDEX = "index.json"
OWNER = "owner.json"
DIGESTS = "digests"
OWNER_ENV = "E2GAN_CATALOG_OWNER"
IN_USE_ENV = "E2GAN_CATALOG_IN_USE"  # comma-separated versions keepVersions must not remove (the operator's)
MARKER_WAIT_S = 5.0  # how long a duplicate waits for the holder of a content marker to commit
MAX_CLAIM_TRIES = 10_000


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(time.time())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_owner() -> str:
    """$E2GAN_CATALOG_OWNER, else cli:<user>."""
    owner = os.environ.get(OWNER_ENV, "").strip()
    if owner:
        return owner
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _series(base_digest: str, concept: str) -> str:
    """Key of one version series: '<base16>/<concept>'."""
    return f"{base_folder(base_digest)}/{concept}"


class Catalog:
    """An adapter catalog on a Store (local folder or S3)."""

    def __init__(self, store: Store, uri: str, *, reservation_ttl_s: float | None = None) -> None:
        self.store = store
        self.uri = uri
        self._ttl = reservation_ttl_s  # overrides catalog.json (tests); gc's minimum grace follows it
        self._config: CatalogConfig | None = None
        self._located = False
        self._owners: dict[str, str] = {}  # owner.json is write-once: safe to remember

    def __repr__(self) -> str:
        return f"Catalog({self.uri!r})"

    def close(self) -> None:
        self.store.close()

    # -- configuration -----------------------------------------------------------

    @property
    def reservation_ttl_s(self) -> float:
        """How long a claim lives: an upload slower than this cannot commit; gc waits as long."""
        return self._ttl if self._ttl is not None else self.config().reservation_ttl_s

    @property
    def _margin_s(self) -> float:
        """A commit needs this much claim time left, so gc (after expiry) never races a commit."""
        return min(60.0, self.reservation_ttl_s / 10)

    def check_location(self) -> None:
        """CatalogError (one line) when the bucket does not exist; nothing is created."""
        if not self._located:
            self.store.check_location()
            self._located = True

    def _parse_config(self, raw: bytes) -> CatalogConfig:
        where = self.store.uri_of(CONFIG_KEY)
        try:
            cfg = CatalogConfig.model_validate_json(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise CatalogError(f"{where}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        if cfg.format != CATALOG_FORMAT:
            raise CatalogError(f"{where}: unknown format {cfg.format!r} (expected {CATALOG_FORMAT})")
        if cfg.guard not in GUARDS:
            raise CatalogError(f"{where}: unknown guard mode {cfg.guard!r} (use conditional or lock)")
        return cfg

    def config(self, *, create: bool = False) -> CatalogConfig:
        """catalog.json; a catalog without one is initialised in conditional mode on first write
        (after probing the server), never silently in a weaker mode."""
        if self._config is not None:
            return self._config
        raw = self.store.read(CONFIG_KEY)
        if raw is None:
            if not create:
                return CatalogConfig()
            return self.init(create_bucket=False)
        self._config = self._parse_config(raw)
        return self._config

    def init(
        self, guard: str = "conditional", *, reservation_ttl_s: float = 3600.0, create_bucket: bool = True
    ) -> CatalogConfig:
        """Create the location (only here) and catalog.json; refuse a server without conditional
        writes unless guard="lock". An existing catalog.json must agree on the guard."""
        if guard not in GUARDS:
            raise CatalogError(f"guard {guard!r}: use conditional or lock")
        if create_bucket:
            self.store.create_location()
        else:
            self.check_location()
        raw = self.store.read(CONFIG_KEY)
        if raw is not None:
            existing = self._parse_config(raw)
            if existing.guard != guard:
                raise CatalogError(f"{self.store.uri_of(CONFIG_KEY)} already uses guard {existing.guard!r}, not {guard!r}")
            self._config = existing
            return existing
        if guard == "conditional" and not self.store.conditional_writes_work():
            raise CatalogError(
                f"{self.uri}: the server ignores conditional writes (If-None-Match/If-Match); "
                "create the catalog with `e2gan catalog init --guard lock` to use lock objects"
            )
        cfg = CatalogConfig(guard=guard, reservation_ttl_s=reservation_ttl_s, created=_now_iso())
        raw = cfg.model_dump_json(indent=1).encode()
        try:
            self._guarded_store(cfg).create(CONFIG_KEY, raw)
        except Exists:
            existing = self._parse_config(self.store.read(CONFIG_KEY) or b"{}")
            if existing.guard != guard:
                raise CatalogError(
                    f"{self.store.uri_of(CONFIG_KEY)} already uses guard {existing.guard!r}, not {guard!r}"
                ) from None
            cfg = existing
        self._config = cfg
        return cfg

    def _guarded_store(self, cfg: CatalogConfig) -> Store:
        if cfg.guard == "lock":
            from catalog.lockguard import LockGuard

            return LockGuard(self.store)
        return self.store

    @property
    def _w(self) -> Store:
        """The store for writes, under the catalog's guard (initialising it if needed)."""
        self.check_location()
        return self._guarded_store(self.config(create=True))

    def _cache_store(self) -> Store | None:
        """Where a reader may rewrite a stale index: only in an initialised catalog (a reader
        never creates catalog.json, so it never picks the guard for the writers)."""
        if self._config is None and self.store.read(CONFIG_KEY) is None:
            return None
        return self._guarded_store(self.config())

    # -- series indexes ----------------------------------------------------------

    @staticmethod
    def _prefix(base16: str, concept: str) -> str:
        return f"{ADAPTERS}/{base16}/{concept}/"

    def _examine(self, prefix: str, number: int, now: Callable[[], float]) -> IndexEntry | str:
        """A committed entry, "dead" (claim expired without commit, or deleted) or "open"."""
        raw = self.store.read(f"{prefix}v{number}/{VERSION_FILE}")
        if raw is not None:
            try:
                entry = VersionManifest.model_validate_json(raw).entry
            except ValidationError:
                raise CatalogError(f"{self.store.uri_of(prefix)}v{number}/{VERSION_FILE} is invalid") from None
            return entry.model_copy(update={"manifest_digest": f"sha256:{_sha(raw)}"})
        claim_raw = self.store.read(f"{prefix}v{number}/{CLAIM}")
        try:
            claim = Claim.model_validate_json(claim_raw) if claim_raw else None
        except ValidationError:
            claim = None
        if claim is None or claim.expires + self._margin_s < now():
            return "dead"
        return "open"

    def _series_state(self, base16: str, concept: str, *, save: bool = True) -> tuple[SeriesIndex, int]:
        """The series' index, refreshed against a LIST of its folders (a missing or stale index is
        rebuilt from the manifests); and the highest number any folder uses."""
        prefix = self._prefix(base16, concept)
        key = prefix + SERIES_INDEX
        found = self.store.read_tagged(key)
        index: SeriesIndex | None = None
        if found is not None:
            try:
                index = SeriesIndex.model_validate_json(found[0])
            except ValidationError:
                log.warning("%s is invalid; rebuilding it", self.store.uri_of(key))
        numbers = sorted(n for n in map(version_number, self.store.list_folders(prefix)) if n)
        fresh = SeriesIndex() if index is None else index.model_copy(deep=True)
        present = set(numbers)
        fresh.versions = [e for e in fresh.versions if e.number in present]
        known = {e.number for e in fresh.versions} | set(fresh.dead)
        clock: list[float] = []

        def now() -> float:
            if not clock:
                clock.append(self.store.now())
            return clock[0]

        for number in numbers:
            if number in known:
                continue
            state = self._examine(prefix, number, now)
            if isinstance(state, IndexEntry):
                fresh.versions.append(state)
            elif state == "dead":
                fresh.dead.append(number)
        fresh.versions.sort(key=lambda e: e.number)
        fresh.dead.sort()
        fresh.latest = max((e.number for e in fresh.versions), default=0)
        changed = fresh != index if index is not None else bool(numbers)
        cache = self._cache_store() if save and changed else None
        if cache is not None:
            try:
                cache.replace(key, fresh.model_dump_json(indent=1).encode(), found[1] if found else None)
            except ConflictError:
                pass  # another process refreshed it meanwhile: ours is a cache too
        highest = max([*numbers, *fresh.dead, fresh.latest, 0])
        return fresh, highest

    def _series_list(self) -> list[tuple[str, str]]:
        """Every (base16, concept) by paginated LIST."""
        return [
            (base16, concept)
            for base16 in self.store.list_folders(f"{ADAPTERS}/")
            for concept in self.store.list_folders(f"{ADAPTERS}/{base16}/")
        ]

    def reindex(self) -> int:
        """Rebuild every series index from the committed manifests; returns the versions found."""
        self.check_location()
        total = 0
        for base16, concept in self._series_list():
            prefix = self._prefix(base16, concept)
            clock: list[float] = []

            def now(clock: list[float] = clock) -> float:
                if not clock:
                    clock.append(self.store.now())
                return clock[0]

            fresh = SeriesIndex()
            for number in sorted(n for n in map(version_number, self.store.list_folders(prefix)) if n):
                state = self._examine(prefix, number, now)
                if isinstance(state, IndexEntry):
                    fresh.versions.append(state)
                elif state == "dead":
                    fresh.dead.append(number)
            fresh.latest = max((e.number for e in fresh.versions), default=0)
            self._w.update(prefix + SERIES_INDEX, lambda _raw, f=fresh: f.model_dump_json(indent=1).encode())
            total += len(fresh.versions)
        return total

    # -- reading -----------------------------------------------------------------

    def index(self) -> list[IndexEntry]:
        """Every published adapter version (by concept, base, number)."""
        entries = [e for b, c in self._series_list() for e in self._series_state(b, c)[0].versions]
        return sorted(entries, key=lambda e: (e.concept, e.base_model_digest, e.number))

    def _bases_of(self, concept: str, base_digest: str | None) -> list[str]:
        if base_digest:
            return [base_folder(base_digest)]
        return [b for b in self.store.list_folders(f"{ADAPTERS}/") if concept in self.store.list_folders(f"{ADAPTERS}/{b}/")]

    def versions(self, concept: str, base_digest: str | None = None) -> list[IndexEntry]:
        """Published versions of `concept`, lowest number first (optionally of one base model)."""
        check_concept(concept)
        found = [e for b in self._bases_of(concept, base_digest) for e in self._series_state(b, concept)[0].versions]
        if base_digest:
            want = base_digest.removeprefix("sha256:")
            found = [e for e in found if e.base_model_digest.removeprefix("sha256:").startswith(want)]
        return sorted(found, key=lambda e: (e.base_model_digest, e.number))

    def show(self, concept: str, version: str | None = None, base_digest: str | None = None) -> IndexEntry:
        """One entry: `version` (vN) or the latest (highest number); CatalogError when there is none.
        Without `base_digest`, a concept published under several bases is an error listing them."""
        number = parse_version(version) if version is not None else None
        found = self.versions(concept, base_digest)
        bases = sorted({base_folder(e.base_model_digest) for e in found})
        if len(bases) > 1:
            raise CatalogError(f"{concept} exists under several bases ({', '.join(bases)}): give --base")
        if number is not None:
            found = [e for e in found if e.number == number]
        if not found:
            what = f"{concept} {version}" if version else concept
            raise CatalogError(f"no published adapter {what} in {self.uri}")
        return found[-1]

    def resolve(self, address: str, base_digest: str | None = None) -> IndexEntry:
        """`concept`, `concept@vN`, `base16/concept/vN`, or `[base16/]concept@sha256:<hex>`."""
        if "@sha256:" in address:
            name, _, digest = address.partition("@")
            check_manifest_digest(digest)
            base, _, concept = name.rpartition("/")
            matches = [e for e in self.versions(concept, base or base_digest) if e.manifest_digest == digest]
            if not matches:
                raise CatalogError(f"no version of {concept} has manifest digest {digest[:19]}… in {self.uri}")
            return matches[0]
        parts = address.split("/")
        if len(parts) == 3:
            return self.show(parts[1], parts[2], parts[0])
        if len(parts) == 1:
            concept, _, version = address.partition("@")
            return self.show(concept, version or None, base_digest)
        raise CatalogError(f"address {address!r} does not parse: use base/concept/vN or concept@sha256:<hex>")

    def series_owner(self, base_digest: str, concept: str) -> str | None:
        raw = self.store.read(self._prefix(base_folder(base_digest), concept) + OWNER)
        if raw is None:
            return None
        try:
            return str(json.loads(raw)["owner"])
        except (ValueError, KeyError, TypeError):
            raise CatalogError(f"{self.store.uri_of(self._prefix(base_folder(base_digest), concept) + OWNER)} is invalid") from None

    # -- publishing --------------------------------------------------------------

    def _take_series(self, base_digest: str, concept: str, owner: str) -> None:
        prefix = self._prefix(base_folder(base_digest), concept)
        recorded = self._owners.get(prefix)
        if recorded is None:
            body = json.dumps({"owner": owner, "base_model_digest": base_digest, "concept": concept}).encode()
            try:
                self._w.create(prefix + OWNER, body)
                recorded = owner
            except Exists:
                recorded = self.series_owner(base_digest, concept)
            if recorded is not None:
                self._owners[prefix] = recorded
        if recorded != owner:
            raise SeriesTaken(_series(base_digest, concept), str(recorded))

    def publish(
        self,
        folder: Path,
        *,
        base_digest: str,
        concept: str,
        owner: str | None = None,
        keep_versions: int | None = None,
        in_use: Iterable[str] | None = None,
    ) -> IndexEntry:
        """Publish an adapter folder as the next version; identical content already published is
        returned as is. With `keep_versions`, older versions of the series beyond that many are
        removed, except those named in `in_use` (default $E2GAN_CATALOG_IN_USE: the versions the
        operator still serves)."""
        check_concept(concept)
        base16 = base_folder(base_digest)
        folder = Path(folder)
        manifest = check_adapter_folder(folder, base_digest=base_digest, concept=concept)
        if keep_versions is not None and keep_versions < 1:
            raise CatalogError("keepVersions must be at least 1")
        digest = manifest.content_digest()
        owner = owner or default_owner()
        w = self._w
        self._take_series(base_digest, concept, owner)
        prefix = self._prefix(base16, concept)
        index, highest = self._series_state(base16, concept)
        for entry in index.versions:
            if entry.digest == digest:
                return entry

        number, claim = self._claim(w, prefix, highest + 1, owner, digest)
        key = f"{prefix}v{number}"
        uploaded: list[str] = []
        try:
            files = self._upload(w, folder, key, manifest, uploaded)
            existing = self._take_marker(w, prefix, digest, number, claim.token)
            if existing is not None:  # an identical publish committed first
                self._delete_quietly(uploaded)
                return existing
            entry = self._commit(w, prefix, number, claim, manifest, files, owner, base_digest, concept, digest)
        except BaseException:
            self._delete_quietly(uploaded)  # the claim stays: the number is never reused
            raise
        self._add_to_index(w, prefix, entry)
        log.info("published %s %s (%d bytes) to %s", concept, entry.version, entry.size, entry.uri)
        if keep_versions is not None:
            if in_use is None:
                in_use = [v.strip() for v in os.environ.get(IN_USE_ENV, "").split(",") if v.strip()]
            self._keep(base16, concept, keep_versions, {*in_use, entry.version})
        return entry

    def _claim(self, w: Store, prefix: str, start: int, owner: str, digest: str) -> tuple[int, Claim]:
        """Take the first free number from `start` with a write-once claim.json."""
        now = self.store.now()
        claim = Claim(
            token=uuid.uuid4().hex, owner=owner, digest=digest, created=now, expires=now + self.reservation_ttl_s
        )
        raw = claim.model_dump_json().encode()
        number = start
        for _ in range(MAX_CLAIM_TRIES):
            try:
                w.create(f"{prefix}v{number}/{CLAIM}", raw)
                return number, claim
            except Exists:
                if self.store.read(f"{prefix}v{number}/{CLAIM}") == raw:
                    return number, claim  # our own create landed and was retried: a 412 about ourselves
                number += 1
        raise CatalogError(f"{self.store.uri_of(prefix)}: no free version number after {MAX_CLAIM_TRIES} tries")

    def _upload(
        self, w: Store, folder: Path, key: str, manifest: AdapterManifest, uploaded: list[str]
    ) -> dict[str, FileRef]:
        """Create every listed file write-once, then manifest.json; return the file table."""
        files: dict[str, FileRef] = {}
        names = [*sorted(manifest.files), MANIFEST_NAME]
        for name in names:
            path = folder / name
            if name == MANIFEST_NAME:
                raw = path.read_bytes()
                sha, size = _sha(raw), len(raw)
            else:
                sha, size = manifest.files[name].sha256, manifest.files[name].size
            target = f"{key}/{name}"
            try:
                w.create_file(target, path)
                uploaded.append(target)
            except Exists:
                # A retried create that had landed answers 412: the bytes decide whether it was ours.
                if self._hash_object(target)[0] != sha:
                    raise CatalogError(f"{self.store.uri_of(target)} exists with other bytes; not committing") from None
                uploaded.append(target)
            files[name] = FileRef(sha256=sha, size=size, uri=self.store.uri_of(target))
        return files

    def _take_marker(self, w: Store, prefix: str, digest: str, number: int, token: str) -> IndexEntry | None:
        """Record that `number` holds `digest`; return the committed entry of an identical publish
        that took the marker first (waiting briefly while its holder commits)."""
        key = f"{prefix}{DIGESTS}/{digest.removeprefix('sha256:')}.json"
        body = json.dumps({"number": number, "token": token}).encode()
        deadline = time.monotonic() + MARKER_WAIT_S
        while True:
            try:
                w.create(key, body)
                return None
            except Exists:
                pass
            found = self.store.read_tagged(key)
            if found is None:
                continue  # deleted meanwhile (the holder's version was removed): try again
            try:
                held = json.loads(found[0])
                other, other_token = int(held["number"]), str(held["token"])
            except (ValueError, KeyError, TypeError):
                other, other_token = 0, ""
            if other_token == token:
                return None  # our own retried create
            raw = self.store.read(f"{prefix}v{other}/{VERSION_FILE}") if other else None
            if raw is not None:
                entry = VersionManifest.model_validate_json(raw).entry
                return entry.model_copy(update={"manifest_digest": f"sha256:{_sha(raw)}"})
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            # The holder never committed (it died between marker and commit): take the marker over.
            try:
                w.replace(key, body, found[1])
                return None
            except ConflictError:
                deadline = time.monotonic() + MARKER_WAIT_S

    def _commit(
        self,
        w: Store,
        prefix: str,
        number: int,
        claim: Claim,
        manifest: AdapterManifest,
        files: dict[str, FileRef],
        owner: str,
        base_digest: str,
        concept: str,
        digest: str,
    ) -> IndexEntry:
        key = f"{prefix}v{number}"
        now = self.store.now()
        if claim.expires - now < self._margin_s:
            raise CatalogError(f"publish of {concept} v{number} took longer than its reservation; retry")
        for name, ref in files.items():  # every listed file must be there before the commit
            info = self.store.head(f"{key}/{name}")
            if info is None or info.size != ref.size:
                raise CatalogError(f"{concept} v{number}: {name} is missing from the catalog after upload; not committing")
        entry = IndexEntry(
            concept=concept,
            version=f"v{number}",
            base_model_digest=base_digest,
            digest=digest,
            key=key,
            uri=self.store.uri_of(key),
            files=files,
            size=sum(f.size for f in files.values()),
            metrics={k: v for k, v in manifest.metrics.items() if not isinstance(v, dict | list)},  # flat figures only
            ranks=manifest.ranks,
            prompt=manifest.prompt,
            created=_iso(now),
            owner=owner,
            catalog_uri=self.uri,
        )
        raw = VersionManifest(entry=entry).model_dump_json(indent=1).encode()
        try:
            w.create_in_claim(f"{key}/{VERSION_FILE}", raw)
        except Exists:
            if self.store.read(f"{key}/{VERSION_FILE}") != raw:
                raise CatalogError(f"{self.store.uri_of(key)}/{VERSION_FILE} exists with other content") from None
        return entry.model_copy(update={"manifest_digest": f"sha256:{_sha(raw)}"})

    def _add_to_index(self, w: Store, prefix: str, entry: IndexEntry) -> None:
        def change(raw: bytes | None) -> bytes | None:
            try:
                index = SeriesIndex.model_validate_json(raw) if raw else SeriesIndex()
            except ValidationError:
                index = SeriesIndex()
            if any(e.number == entry.number for e in index.versions):
                return None
            index.versions = sorted([*index.versions, entry], key=lambda e: e.number)
            index.latest = max(index.latest, entry.number)
            return index.model_dump_json(indent=1).encode()

        try:
            w.update(prefix + SERIES_INDEX, change)
        except CatalogError as exc:  # the index is a cache: the next reader rebuilds it
            log.warning("could not update %s: %s", self.store.uri_of(prefix + SERIES_INDEX), exc)

    def _delete_quietly(self, keys: list[str]) -> None:
        try:
            self.store.delete(keys)
        except CatalogError as exc:
            log.warning("could not delete %d uploaded objects: %s", len(keys), exc)

    # -- pulling and verifying ---------------------------------------------------

    def _hash_object(self, key: str, sink: Callable[[bytes], object] | None = None) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        for block in self.store.iter_bytes(key):
            digest.update(block)
            size += len(block)
            if sink:
                sink(block)
        return digest.hexdigest(), size

    def pull(
        self,
        concept: str,
        dest: Path,
        version: str | None = None,
        base_digest: str | None = None,
        *,
        manifest_digest: str | None = None,
    ) -> Path:
        """Download a version into `dest`, checking every sha256; nothing lands in `dest` on mismatch.
        With `manifest_digest` (sha256:…), only the version whose version.json has that digest."""
        if manifest_digest is not None:
            prefix = f"{base_folder(base_digest)}/" if base_digest else ""
            entry = self.resolve(f"{prefix}{concept}@{manifest_digest}")
        else:
            entry = self.show(concept, version, base_digest)
        raw = self.store.read(f"{entry.key}/{VERSION_FILE}")
        if raw is None:  # deleted after the index was written: the index is stale
            self._forget(entry)
            raise CatalogError(f"no published adapter {concept} {entry.version} in {self.uri} (it was deleted)")
        if manifest_digest is not None and f"sha256:{_sha(raw)}" != manifest_digest:
            raise CatalogError(f"{concept} {entry.version}: {VERSION_FILE} does not match {manifest_digest[:19]}…")
        try:
            committed = VersionManifest.model_validate_json(raw).entry
        except ValidationError:
            raise CatalogError(f"{concept} {entry.version}: stored {VERSION_FILE} is invalid") from None
        if committed.files != entry.files:  # the version manifest is the truth; the index a cache
            log.warning("index of %s %s is stale; using its %s", concept, entry.version, VERSION_FILE)
            self._forget(entry)
            entry = committed
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            for name, ref in entry.files.items():
                with open(staging / name, "wb") as handle:
                    try:
                        sha, size = self._hash_object(f"{entry.key}/{name}", handle.write)
                    except MissingObject:
                        raise CatalogError(f"{concept} {entry.version}: {name} is missing from the catalog") from None
                if sha != ref.sha256 or size != ref.size:
                    raise CatalogError(f"{concept} {entry.version}: {name} does not match its sha256; refusing it")
            _check_pulled_manifest(staging, entry)
            dest.mkdir(exist_ok=True)
            for name in (*ADAPTER_FILES, MANIFEST_NAME):  # another version's files must not linger
                if name not in entry.files:
                    (dest / name).unlink(missing_ok=True)
            for name in entry.files:  # each rename is atomic; the manifest goes last
                if name != MANIFEST_NAME:
                    os.replace(staging / name, dest / name)
            os.replace(staging / MANIFEST_NAME, dest / MANIFEST_NAME)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def _forget(self, entry: IndexEntry) -> None:
        """Drop a stale entry from its series' index; the next read rebuilds it from the manifests."""
        cache = self._cache_store()
        key = self._prefix(base_folder(entry.base_model_digest), entry.concept) + SERIES_INDEX
        if cache is None:
            return
        found = self.store.read_tagged(key)
        if found is None:
            return
        try:
            index = SeriesIndex.model_validate_json(found[0])
        except ValidationError:
            index = SeriesIndex()
        index.versions = [e for e in index.versions if e.number != entry.number]
        index.latest = max((e.number for e in index.versions), default=0)
        try:
            cache.replace(key, index.model_dump_json(indent=1).encode(), found[1])
        except ConflictError:
            pass

    def verify(self, concept: str | None = None) -> VerifyReport:
        """Recompute the sha256 of every stored file of every (or one concept's) version."""
        report = VerifyReport()
        entries = self.versions(concept) if concept is not None else self.index()
        for entry in entries:
            report.versions += 1
            for name, ref in entry.files.items():
                report.files += 1
                try:
                    sha, size = self._hash_object(f"{entry.key}/{name}")
                except MissingObject:
                    problem = "missing"
                else:
                    report.bytes += size
                    problem = (
                        ""
                        if sha == ref.sha256 and size == ref.size
                        else ("size mismatch" if size != ref.size else "sha256 mismatch")
                    )
                if problem:
                    report.problems.append(
                        Problem(
                            concept=entry.concept,
                            version=entry.version,
                            base_model_digest=entry.base_model_digest,
                            file=name,
                            problem=problem,
                        )
                    )
        return report

    # -- removing ----------------------------------------------------------------

    def _remove(self, entries: list[IndexEntry]) -> list[IndexEntry]:
        """Uncommit first (version.json: readers stop seeing it), then the marker and files.
        claim.json stays, so the number is never given again."""
        if not entries:
            return []
        w = self._w
        touched: set[tuple[str, str]] = set()
        for entry in entries:
            base16 = base_folder(entry.base_model_digest)
            prefix = self._prefix(base16, entry.concept)
            self.store.delete([f"{entry.key}/{VERSION_FILE}"])
            marker = f"{prefix}{DIGESTS}/{entry.digest.removeprefix('sha256:')}.json"
            raw = self.store.read(marker)
            try:
                if raw is not None and int(json.loads(raw)["number"]) == entry.number:
                    self.store.delete([marker])
            except (ValueError, KeyError, TypeError):
                pass
            keys = [o.key for o in self.store.list(entry.key + "/") if not o.key.endswith(f"/{CLAIM}")]
            self.store.delete(keys)
            touched.add((base16, entry.concept))
            log.info("removed %s %s from %s", entry.concept, entry.version, self.uri)
        for base16, concept in touched:
            prefix = self._prefix(base16, concept)
            gone = {e.number for e in entries if (base_folder(e.base_model_digest), e.concept) == (base16, concept)}

            def change(raw: bytes | None, gone: set[int] = gone) -> bytes | None:
                try:
                    index = SeriesIndex.model_validate_json(raw) if raw else SeriesIndex()
                except ValidationError:
                    index = SeriesIndex()
                index.versions = [e for e in index.versions if e.number not in gone]
                index.dead = sorted({*index.dead, *gone})
                index.latest = max((e.number for e in index.versions), default=0)
                return index.model_dump_json(indent=1).encode()

            try:
                w.update(prefix + SERIES_INDEX, change)
            except CatalogError as exc:
                log.warning("could not update the index of %s/%s: %s", base16, concept, exc)
        return entries

    def delete(
        self,
        concept: str,
        version: str | None = None,
        base_digest: str | None = None,
        owner: str | None = None,
    ) -> list[IndexEntry]:
        """Remove one version, or every version of `concept` (of one base, or all); returns them.
        With `owner`, refuse to remove a version recorded under another owner."""
        number = parse_version(version) if version is not None else None
        chosen = [e for e in self.versions(concept, base_digest) if number is None or e.number == number]
        if owner is not None:
            foreign = [e for e in chosen if e.owner != owner]
            if foreign:
                raise CatalogError(
                    f"{concept} {foreign[0].version} is owned by {foreign[0].owner or 'nobody'}, not {owner}; not deleting"
                )
        return self._remove(chosen)

    def _keep(self, base16: str, concept: str, keep: int, in_use: set[str]) -> list[IndexEntry]:
        versions = self._series_state(base16, concept)[0].versions
        newest = {e.version for e in sorted(versions, key=lambda e: e.number)[-keep:]}
        return self._remove([e for e in versions if e.version not in newest and e.version not in in_use])

    def prune(self, keep: int, in_use: Iterable[str] = ()) -> list[IndexEntry]:
        """Keep the `keep` highest-numbered versions per (base model, concept); remove the rest."""
        if keep < 1:
            raise CatalogError("keep must be at least 1")
        self.check_location()
        return [e for b, c in self._series_list() for e in self._keep(b, c, keep, set(in_use))]

    def gc(self, keep: int | None = None, grace_s: float | None = None) -> GcReport:
        """Prune to `keep`, then delete the files of abandoned uploads.

        Lists first, then decides per folder: a folder with version.json is committed and never
        touched; an uncommitted one goes only when its claim expired and nothing in it is younger
        than the grace (>= the claim TTL, enforced), by the server's clock; a last HEAD of
        version.json right before deleting rules out a commit that raced the listing."""
        ttl = self.reservation_ttl_s
        grace = ttl if grace_s is None else grace_s
        if grace < ttl:
            raise CatalogError(f"gc: --grace must be at least the reservation TTL ({ttl:g} s)")
        self.check_location()
        listed = list(self.store.list(f"{ADAPTERS}/"))  # before reading any index or claim
        now = self.store.now()
        report = GcReport(pruned=self.prune(keep) if keep else [])
        folders: dict[str, list] = {}
        for obj in listed:
            parts = obj.key.split("/")
            if len(parts) >= 5 and version_number(parts[3]):
                folders.setdefault("/".join(parts[:4]), []).append(obj)
        for folder, objects in sorted(folders.items()):
            names = {o.key.rsplit("/", 1)[1] for o in objects}
            if VERSION_FILE in names or names <= {CLAIM}:
                continue  # committed, or only a tombstone claim holding the number
            raw = self.store.read(f"{folder}/{CLAIM}")
            try:
                claim = Claim.model_validate_json(raw) if raw else None
            except ValidationError:
                claim = None
            young = max(o.modified for o in objects) > now - grace
            if young or (claim is not None and claim.expires + self._margin_s > now):
                report.kept.append(folder)
                continue
            if self.store.head(f"{folder}/{VERSION_FILE}") is not None:
                continue  # committed after we listed
            self.store.delete([o.key for o in objects if not o.key.endswith(f"/{CLAIM}")])
            report.orphans.append(folder)
            report.reservations += claim is not None
        for obj in self.store.list("probe/"):  # init probes are removed at once; this catches a crash
            if obj.modified < now - grace:
                self.store.delete([obj.key])
        return report

    # -- progress ----------------------------------------------------------------

    def write_progress(self, key: str, payload: dict) -> None:
        """Store a small JSON object at progress/<key>.json (last writer wins)."""
        check_progress_key(key)
        self.store.write(f"{PROGRESS}/{key}.json", json.dumps(payload, sort_keys=True).encode())

    def read_progress(self, key: str) -> dict | None:
        check_progress_key(key)
        raw = self.store.read(f"{PROGRESS}/{key}.json")
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise CatalogError(f"progress {key}: not JSON") from None
        return value if isinstance(value, dict) else None


def _check_pulled_manifest(folder: Path, entry: IndexEntry) -> None:
    """The pulled manifest must list exactly the files (and digests) the index promised."""
    try:
        manifest = AdapterManifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
    except ValidationError:
        raise CatalogError(f"{entry.concept} {entry.version}: stored manifest.json is invalid") from None
    listed = {n: f.sha256 for n, f in manifest.files.items()}
    promised = {n: f.sha256 for n, f in entry.files.items() if n != MANIFEST_NAME}
    if listed != promised:
        raise CatalogError(f"{entry.concept} {entry.version}: manifest.json disagrees with the index")


def entries_table(entries: Iterable[IndexEntry]) -> list[dict[str, object]]:
    """Rows for `ls`: the fields a person scans."""
    return [
        {
            "concept": e.concept,
            "version": e.version,
            "base": base_folder(e.base_model_digest),
            "size": e.size,
            "created": e.created,
            "digest": e.digest[:12],
        }
        for e in entries
    ]
