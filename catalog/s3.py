"""The S3 backend (minio SDK): MinIO in production, any S3 server that checks signatures.

index.json is updated by read-modify-write under one of two guards, chosen by probing the
server once (E2GAN_S3_INDEX_LOCK overrides):
- etag: PUT with If-Match (or If-None-Match: * for the first write); a lost race gets 412 and
  is retried on fresh content. Exact on MinIO and AWS, which check and write atomically.
- lock: for servers that ignore conditions (rclone serve s3). A lock object holding a random
  token and an expiry; a writer that finds it free writes its token, waits LOCK_SETTLE_S and
  reads it back to see who won. Safe while a request takes less than the settle time, and
  a dead holder blocks others for at most LOCK_TTL_S.
Objects carry no tags or x-amz-meta headers: every fact lives in JSON files.
"""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException

from catalog.errors import CatalogError, ConflictError
from catalog.s3errors import is_conflict, s3_errors
from catalog.settings import S3Settings
from catalog.store import MissingObject, Mutation, ObjectInfo, Store

log = logging.getLogger(__name__)

LOCKS = "locks"
UPDATE_DEADLINE_S = 120.0  # give up on a contended index after this long
LOCK_TTL_S = 30.0  # a lock holder does two small requests; a dead holder blocks others this long
LOCK_SETTLE_S = 0.5  # wait after writing a lock so a racing writer's PUT lands before we re-read (0.15 s lost updates under load)


def make_client(settings: S3Settings) -> Minio:
    """A Minio client with bounded timeouts and retries, the region always set, and optional custom CA."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s),
        maxsize=16,
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(settings.ca_file) if settings.ca_file else certifi.where(),
        retries=urllib3.Retry(
            total=settings.retries,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=False,
        ),
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key.get_secret_value() if settings.access_key else None,
        secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


class S3Store(Store):
    """Objects under s3://bucket/prefix/; index updates by conditional PUT or a lock object."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings, client: Minio | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.client = client or make_client(settings)
        self._mode: str | None = None if settings.index_lock == "auto" else settings.index_lock
        self._bucket_checked = False
        self._guard = threading.Lock()

    # -- helpers ---------------------------------------------------------------

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    def _errors(self, action: str, key: str) -> AbstractContextManager[None]:
        return s3_errors(action, self.uri_of(key), self.settings.url)

    def prepare(self) -> None:
        self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        """Create the bucket on first write if it is missing (MinIO setups often start empty)."""
        if self._bucket_checked:
            return
        with s3_errors("checking bucket", f"s3://{self.bucket}", self.settings.url):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, location=self.settings.region)
                except MinioException as exc:
                    if not is_conflict(exc):  # created by a concurrent publisher: fine
                        raise
        self._bucket_checked = True

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """(content, ETag) or None when absent."""
        try:
            with self._errors("reading", key):
                response = self.client.get_object(self.bucket, self._name(key))
                try:
                    return response.read(), response.headers.get("ETag", "")
                finally:
                    response.close()
                    response.release_conn()
        except MissingObject:
            return None

    # -- Store -----------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        found = self._get(key)
        return found[0] if found else None

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self._errors("reading", key):
            response = self.client.get_object(self.bucket, self._name(key))
            try:
                yield from response.stream(chunk)
            finally:
                response.close()
                response.release_conn()

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._ensure_bucket()
        with self._errors("writing", key):
            self.client.put_object(
                self.bucket, self._name(key), io.BytesIO(data), len(data), content_type=content_type
            )

    def upload(self, key: str, path: Path) -> None:
        # Objects appear whole (single PUT, or multipart made visible only on completion).
        self._ensure_bucket()
        with self._errors("uploading", key):
            self.client.fput_object(self.bucket, self._name(key), str(path))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._errors("listing", prefix):
            for obj in self.client.list_objects(self.bucket, prefix=self._name(prefix), recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                modified = obj.last_modified.timestamp() if obj.last_modified else time.time()
                yield ObjectInfo(obj.object_name[strip:], obj.size or 0, modified)

    def delete(self, keys: Iterable[str]) -> None:
        names = [DeleteObject(self._name(k)) for k in keys]
        if not names:
            return
        with self._errors("deleting", f"{len(names)} objects under {self.prefix or '/'}"):
            failures = list(self.client.remove_objects(self.bucket, names))  # lazy: must be consumed
        if failures:
            raise CatalogError(
                f"could not delete {failures[0].name} and {len(failures) - 1} more: {failures[0].code}"
            )

    def close(self) -> None:
        self.client._http.clear()

    # -- atomic update ---------------------------------------------------------

    def update(self, key: str, mutate: Mutation) -> None:
        self._ensure_bucket()
        if self._mode is None:
            with self._guard:
                if self._mode is None:
                    self._mode = "etag" if self._conditional_writes_work() else "lock"
                    log.info("index updates on %s use %s", self.settings.url, self._mode)
        if self._mode == "etag":
            self._update_etag(key, mutate)
        else:
            self._update_locked(key, mutate)

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> None:
        """PUT only if the object still has `etag` (or, for None, does not exist yet)."""
        # put_object() would turn If-Match into user metadata; the SDK's _put_object sends
        # headers as given.
        headers = {"If-Match": etag} if etag else {"If-None-Match": "*"}
        headers["Content-Type"] = "application/json"
        try:
            with self._errors("writing", key):
                self.client._put_object(self.bucket, self._name(key), data, headers=headers)
        except MissingObject:  # If-Match on an object deleted meanwhile (moto answers 404)
            raise ConflictError(f"{self.uri_of(key)} was deleted concurrently") from None

    def _conditional_writes_work(self) -> bool:
        """Probe once: does the server refuse a PUT whose condition fails? (MinIO, AWS: yes)."""
        probe = f"{LOCKS}/probe-{uuid.uuid4().hex}"
        try:
            self._put_conditional(probe, b"{}", None)
            try:
                self._put_conditional(probe, b"{}", None)  # exists now: must be refused
                return False
            except ConflictError:
                pass
            try:
                self._put_conditional(probe, b"{}", '"00000000000000000000000000000000"')
                return False
            except ConflictError:
                return True
        except CatalogError as exc:
            if "access refused" in str(exc) or "cannot reach" in str(exc):
                raise
            return False  # e.g. 501 NotImplemented for the header
        finally:
            try:
                self.delete([probe])
            except CatalogError:
                pass

    def _update_etag(self, key: str, mutate: Mutation) -> None:
        deadline = time.monotonic() + UPDATE_DEADLINE_S
        attempt = 0
        while True:
            found = self._get(key)
            new = mutate(found[0] if found else None)
            if new is None:
                return
            try:
                self._put_conditional(key, new, found[1] if found else None)
                return
            except ConflictError:
                attempt += 1
                if time.monotonic() > deadline:
                    raise CatalogError(
                        f"{self.uri_of(key)} is too contended: gave up after {attempt} tries"
                    ) from None
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))

    def _update_locked(self, key: str, mutate: Mutation) -> None:
        lock = f"{LOCKS}/{key}.lock"
        deadline = time.monotonic() + UPDATE_DEADLINE_S
        while True:
            token = self._acquire(lock)
            try:
                new = mutate(self.read(key))
                if new is None:
                    return
                # A racing writer that took the lock after our check wins: start over
                # from a fresh read rather than overwrite its update.
                if self._holds(lock, token):
                    self.write(key, new, content_type="application/json")
                    return
            finally:
                if self._holds(lock, token):
                    self.delete([lock])
            if time.monotonic() > deadline:
                raise CatalogError(f"lost the lock on {self.uri_of(key)} repeatedly; retry later")

    def _holds(self, lock: str, token: str) -> bool:
        raw = self.read(lock)
        try:
            return raw is not None and json.loads(raw).get("token") == token
        except (ValueError, AttributeError):
            return False

    def _acquire(self, lock: str) -> str:
        """Take the lock object: write our token if free or expired, wait, re-read to see who won."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + UPDATE_DEADLINE_S
        while time.monotonic() < deadline:
            raw = self.read(lock)
            held = None
            if raw is not None:
                try:
                    held = json.loads(raw)
                except ValueError:
                    held = None
            if held is None or float(held.get("expires", 0)) < time.time():
                body = json.dumps({"token": token, "expires": time.time() + LOCK_TTL_S}).encode()
                self.write(lock, body, content_type="application/json")
                time.sleep(LOCK_SETTLE_S)
                if self._holds(lock, token):
                    return token
            time.sleep(random.uniform(0.02, 0.2))
        raise CatalogError(f"could not lock {self.uri_of(lock)} within {UPDATE_DEADLINE_S:.0f} s")
