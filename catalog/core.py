"""The catalog: publish, list, pull, verify, delete and prune adapters over any Store.

Publish protocol (readers only ever look at index.json, so they never see a partial version):
  1. reserve: one atomic index update takes the next version number for (base, concept) and
     records a reservation (or returns the existing entry when the same content is published);
  2. upload the adapter files, then manifest.json, into adapters/<base16>/<concept>/<version>/;
  3. commit: one atomic index update swaps the reservation for the entry.
A publisher that dies leaves only a reservation (it expires) and an unlisted folder (gc
deletes it). Version numbers are never reused, even after deletion.
"""

from __future__ import annotations

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

from catalog.checks import base_folder, check_adapter_folder, check_concept, check_progress_key
from catalog.errors import CatalogError
from catalog.models import (
    INDEX_FORMAT,
    FileRef,
    GcReport,
    IndexDocument,
    IndexEntry,
    Problem,
    Reservation,
    VerifyReport,
    version_number,
)
from catalog.store import MissingObject, Store
from e2gan_api.manifest import ADAPTER_FILES, MANIFEST_NAME, AdapterManifest

log = logging.getLogger(__name__)

INDEX_KEY = "index.json"
ADAPTERS = "adapters"
PROGRESS = "progress"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _series(base_digest: str, concept: str) -> str:
    """Key of one version series: '<base16>/<concept>'."""
    return f"{base_folder(base_digest)}/{concept}"


class Catalog:
    """An adapter catalog on a Store (local folder or S3)."""

    def __init__(self, store: Store, uri: str, *, reservation_ttl_s: float = 3600.0) -> None:
        self.store = store
        self.uri = uri
        # An upload slower than this loses its reservation and fails at commit; gc waits as
        # long before deleting an unlisted folder, so it never removes a live upload.
        self.reservation_ttl_s = reservation_ttl_s

    def __repr__(self) -> str:
        return f"Catalog({self.uri!r})"

    def close(self) -> None:
        self.store.close()

    # -- reading -----------------------------------------------------------------

    def _document(self, raw: bytes | None) -> IndexDocument:
        if raw is None:
            return IndexDocument()
        try:
            doc = IndexDocument.model_validate_json(raw)
        except ValidationError as exc:
            # Never overwrite an index we cannot read: that would drop every entry.
            raise CatalogError(
                f"{self.store.uri_of(INDEX_KEY)} is not a valid index: {exc.errors()[0]['msg']}"
            ) from None
        if doc.format != INDEX_FORMAT:
            raise CatalogError(f"{self.store.uri_of(INDEX_KEY)}: unknown format {doc.format!r}")
        return doc

    def _read(self) -> IndexDocument:
        return self._document(self.store.read(INDEX_KEY))

    def _update(self, change: Callable[[IndexDocument], bool]) -> None:
        """Apply `change` to the index atomically; it returns False to leave the index as is."""

        def mutate(raw: bytes | None) -> bytes | None:
            doc = self._document(raw)
            if not change(doc):
                return None
            doc.updated = _now_iso()
            doc.adapters.sort(key=lambda e: (e.concept, e.base_model_digest, e.number))
            return doc.model_dump_json(indent=1).encode()

        self.store.update(INDEX_KEY, mutate)

    def index(self) -> list[IndexEntry]:
        """Every published adapter version."""
        return self._read().adapters

    def versions(self, concept: str, base_digest: str | None = None) -> list[IndexEntry]:
        """Published versions of `concept`, oldest first (optionally of one base model)."""
        base = base_digest and base_digest.removeprefix("sha256:")
        found = [
            e
            for e in self.index()
            if e.concept == concept and (base is None or e.base_model_digest.removeprefix("sha256:") == base)
        ]
        return sorted(found, key=lambda e: (e.created, e.number))

    def show(self, concept: str, version: str | None = None, base_digest: str | None = None) -> IndexEntry:
        """One entry: the given version, or the newest; CatalogError when there is none."""
        found = self.versions(concept, base_digest)
        if version is not None:
            found = [e for e in found if e.version == version]
        if not found:
            what = f"{concept} {version}" if version else concept
            raise CatalogError(f"no published adapter {what} in {self.uri}")
        return found[-1]

    # -- publishing --------------------------------------------------------------

    def publish(self, folder: Path, *, base_digest: str, concept: str) -> IndexEntry:
        """Publish an adapter folder; identical content already published is returned as is."""
        check_concept(concept)
        base16 = base_folder(base_digest)
        folder = Path(folder)
        manifest = check_adapter_folder(folder, base_digest=base_digest, concept=concept)
        digest = manifest.content_digest()
        series = _series(base_digest, concept)
        self.store.prepare()
        existing = self._published(self._read(), series, digest)
        if existing:
            return existing

        token = uuid.uuid4().hex
        reserved: dict[str, object] = {}

        def reserve(doc: IndexDocument) -> bool:
            reserved.clear()
            if found := self._published(doc, series, digest):
                reserved["existing"] = found
                return False
            numbers = [
                version_number(e.version)
                for e in doc.adapters
                if _series(e.base_model_digest, e.concept) == series
            ]
            numbers += [
                version_number(r.version)
                for r in doc.reservations
                if _series(r.base_model_digest, r.concept) == series
            ]
            number = max([_last_version(doc, series), *numbers]) + 1
            _set_last_version(doc, series, number)
            reserved["version"] = f"v{number}"
            doc.reservations.append(
                Reservation(
                    concept=concept,
                    base_model_digest=base_digest,
                    version=f"v{number}",
                    digest=digest,
                    token=token,
                    expires=time.time() + self.reservation_ttl_s,
                )
            )
            return True

        self._update(reserve)
        if "existing" in reserved:
            return reserved["existing"]  # type: ignore[return-value]
        version = str(reserved["version"])
        key = f"{ADAPTERS}/{base16}/{concept}/{version}"
        uploaded: list[str] = []
        try:
            files = self._upload(folder, key, manifest, uploaded)
            entry = IndexEntry(
                concept=concept,
                version=version,
                base_model_digest=base_digest,
                digest=digest,
                key=key,
                uri=self.store.uri_of(key),
                files=files,
                size=sum(f.size for f in files.values()),
                metrics={k: v for k, v in manifest.metrics.items() if not isinstance(v, dict | list)},  # flat figures only
                ranks=manifest.ranks,
                prompt=manifest.prompt,
                created=_now_iso(),
            )
            outcome: dict[str, IndexEntry] = {}

            def commit(doc: IndexDocument) -> bool:
                outcome.clear()
                if any(e.key == key and e.digest == digest for e in doc.adapters):
                    return False  # an earlier try of this very write landed (a retried PUT)
                mine = [r for r in doc.reservations if r.token == token]
                if not mine:
                    raise CatalogError(
                        f"publish of {concept} {version} took longer than its reservation; retry"
                    )
                doc.reservations = [r for r in doc.reservations if r.token != token]
                if found := self._published(doc, series, digest):
                    outcome["existing"] = found  # an identical publish won the race
                else:
                    doc.adapters.append(entry)
                return True

            self._update(commit)
        except BaseException:
            self._abandon(token, uploaded)
            raise
        if "existing" in outcome:
            self._delete_quietly(uploaded)
            return outcome["existing"]
        log.info("published %s %s (%d bytes) to %s", concept, version, entry.size, entry.uri)
        return entry

    @staticmethod
    def _published(doc: IndexDocument, series: str, digest: str) -> IndexEntry | None:
        for entry in doc.adapters:
            if entry.digest == digest and _series(entry.base_model_digest, entry.concept) == series:
                return entry
        return None

    def _upload(
        self, folder: Path, key: str, manifest: AdapterManifest, uploaded: list[str]
    ) -> dict[str, FileRef]:
        """Upload every listed file, then manifest.json last; return the index's file table."""
        files: dict[str, FileRef] = {}
        for name in sorted(manifest.files):
            self.store.upload(f"{key}/{name}", folder / name)
            uploaded.append(f"{key}/{name}")
            meta = manifest.files[name]
            files[name] = FileRef(sha256=meta.sha256, size=meta.size, uri=self.store.uri_of(f"{key}/{name}"))
        raw = (folder / MANIFEST_NAME).read_bytes()
        self.store.write(f"{key}/{MANIFEST_NAME}", raw)
        uploaded.append(f"{key}/{MANIFEST_NAME}")
        files[MANIFEST_NAME] = FileRef(
            sha256=hashlib.sha256(raw).hexdigest(),
            size=len(raw),
            uri=self.store.uri_of(f"{key}/{MANIFEST_NAME}"),
        )
        return files

    def _abandon(self, token: str, uploaded: list[str]) -> None:
        """Best effort after a failed publish: drop the reservation and the uploaded files."""
        try:
            self._update(lambda doc: _drop_reservation(doc, token))
            self._delete_quietly(uploaded)
        except CatalogError as exc:  # the server may be gone: gc cleans up after expiry
            log.warning("could not clean up after a failed publish: %s", exc)

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
        self, concept: str, dest: Path, version: str | None = None, base_digest: str | None = None
    ) -> Path:
        """Download a version into `dest`, checking every sha256; nothing lands in `dest` on mismatch."""
        entry = self.show(concept, version, base_digest)
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
                        raise CatalogError(
                            f"{concept} {entry.version}: {name} is missing from the catalog"
                        ) from None
                if sha != ref.sha256 or size != ref.size:
                    raise CatalogError(
                        f"{concept} {entry.version}: {name} does not match its sha256; refusing it"
                    )
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

    def verify(self, concept: str | None = None) -> VerifyReport:
        """Recompute the sha256 of every stored file of every (or one concept's) version."""
        report = VerifyReport()
        for entry in self.index():
            if concept is not None and entry.concept != concept:
                continue
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

    def _remove(self, select: Callable[[list[IndexEntry]], list[IndexEntry]]) -> list[IndexEntry]:
        """Drop the selected entries from the index first (readers stop seeing them), then their files."""
        removed: list[IndexEntry] = []

        def change(doc: IndexDocument) -> bool:
            removed[:] = select(doc.adapters)
            keys = {e.key for e in removed}
            doc.adapters = [e for e in doc.adapters if e.key not in keys]
            return bool(removed)

        self._update(change)
        for entry in removed:
            self.store.delete([obj.key for obj in self.store.list(entry.key + "/")])
            log.info("removed %s %s from %s", entry.concept, entry.version, self.uri)
        return removed

    def delete(
        self, concept: str, version: str | None = None, base_digest: str | None = None
    ) -> list[IndexEntry]:
        """Remove one version, or every version of `concept` (of one base, or all); returns them."""
        base = base_digest and base_digest.removeprefix("sha256:")
        return self._remove(
            lambda entries: [
                e
                for e in entries
                if e.concept == concept
                and (version is None or e.version == version)
                and (base is None or e.base_model_digest.removeprefix("sha256:") == base)
            ]
        )

    def prune(self, keep: int) -> list[IndexEntry]:
        """Keep the newest `keep` versions per (base model, concept); remove the rest."""
        if keep < 1:
            raise CatalogError("keep must be at least 1")

        def older(entries: list[IndexEntry]) -> list[IndexEntry]:
            series: dict[str, list[IndexEntry]] = {}
            for e in entries:
                series.setdefault(_series(e.base_model_digest, e.concept), []).append(e)
            return [e for group in series.values() for e in sorted(group, key=lambda e: e.number)[:-keep]]

        return self._remove(older)

    def gc(self, keep: int | None = None, grace_s: float | None = None) -> GcReport:
        """Prune to `keep`, drop expired reservations, delete abandoned unlisted folders."""
        report = GcReport(pruned=self.prune(keep) if keep else [])
        now = time.time()
        grace = self.reservation_ttl_s if grace_s is None else grace_s

        def expire(doc: IndexDocument) -> bool:
            before = len(doc.reservations)
            doc.reservations = [r for r in doc.reservations if r.expires > now]
            report.reservations = before - len(doc.reservations)
            return report.reservations > 0

        self._update(expire)
        doc = self._read()
        live = {e.key for e in doc.adapters}
        live |= {
            f"{ADAPTERS}/{base_folder(r.base_model_digest)}/{r.concept}/{r.version}" for r in doc.reservations
        }
        folders: dict[str, list[tuple[str, float]]] = {}
        for obj in self.store.list(ADAPTERS + "/"):
            folder = "/".join(obj.key.split("/")[:4])
            folders.setdefault(folder, []).append((obj.key, obj.modified))
        for folder, objects in sorted(folders.items()):
            # Recently written objects may belong to a publish that reserved after we read.
            if folder not in live and max(m for _, m in objects) < now - grace:
                self.store.delete([k for k, _ in objects])
                report.orphans.append(folder)
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


def _last_version(doc: IndexDocument, series: str) -> int:
    """Highest version number ever given in `series` (kept so numbers are never reused)."""
    return doc.last_versions.get(series, 0)


def _set_last_version(doc: IndexDocument, series: str, number: int) -> None:
    doc.last_versions[series] = max(number, _last_version(doc, series))


def _drop_reservation(doc: IndexDocument, token: str) -> bool:
    before = len(doc.reservations)
    doc.reservations = [r for r in doc.reservations if r.token != token]
    return len(doc.reservations) != before


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
