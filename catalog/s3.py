"""The S3 backend (boto3): MinIO or AWS in production, any S3 server that checks signatures.

Conditional writes use boto3's public `IfNoneMatch="*"` (write-once create) and `IfMatch=<etag>`
(compare-and-swap). Whether the server honours them is decided once, at `e2gan catalog init`,
and recorded in catalog.json; a server that ignores them is refused there unless the catalog
is created in the explicit lock mode (catalog/lockguard.py).

Retries: botocore retries a request whose response was lost. A retried create that had
landed answers 412; callers resolve that by re-reading (same bytes: it was ours), never by
re-applying. Objects carry no tags or x-amz-meta headers: every fact lives in JSON files.
"""

from __future__ import annotations

import email.utils
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from catalog.errors import CatalogError, ConflictError
from catalog.s3errors import s3_errors
from catalog.settings import S3Settings
from catalog.store import Exists, MissingObject, ObjectInfo, Store

PROBE = "probe"  # folder of the init probe objects (always removed)
CLOCK_FRESH_S = 10.0  # a Date header this recent gives the server's clock without another request
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


def make_session(settings: S3Settings) -> Any:
    """A boto3 session: the given keys (and STS session token), else the SDK's credential chain."""
    import boto3

    access, secret, token, _ = settings.current_keys()
    return boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret, aws_session_token=token)


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _shared_session() -> Any:
    """One boto3 session per process: it loads the S3 service model once (a new session per
    client costs 0.3-1 s of CPU). Sessions are not thread-safe, so clients are made under a lock."""
    global _SESSION
    import boto3

    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client with bounded timeouts and retries, the region set, optional custom CA.

    Keys given (env, Secret folder, STS session token) are used as is; otherwise the SDK's own
    credential chain (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, profiles, container roles)."""
    import botocore
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        retries={"total_max_attempts": settings.retries + 1, "mode": "standard"},
        s3={"addressing_style": "path"},
        # Plain signed payloads: S3 servers other than AWS (rclone, older MinIO) refuse the
        # aws-chunked streaming checksums newer SDKs send by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=16,
        signature_version=botocore.UNSIGNED if settings.anonymous else None,
    )
    access, secret, token, _ = settings.current_keys()
    with _SESSION_LOCK:
        return _shared_session().client(
            "s3",
            endpoint_url=settings.url,
            config=config,
            verify=str(settings.ca_file) if settings.ca_file else True,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )


class S3Store(Store):
    """Objects under s3://bucket/prefix/."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings, client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self._lock = threading.Lock()
        self._client = client
        self._stamp = settings.current_keys()[3]
        self._clock_offset = 0.0  # server Date minus local time, from the latest response
        self._clock_seen = -1e9  # monotonic time of that response

    @property
    def client(self) -> Any:
        """The boto3 client, rebuilt when the mounted Secret's files change (rotation)."""
        with self._lock:
            stamp = self.settings.current_keys()[3] if self.settings.credentials_dir else ()
            if self._client is None or stamp != self._stamp:
                self._client = make_client(self.settings)
                self._stamp = stamp
            return self._client

    # -- helpers ---------------------------------------------------------------

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    def _errors(self, action: str, key: str) -> AbstractContextManager[None]:
        return s3_errors(action, self.uri_of(key), self.settings.url)

    def _seen(self, response: dict) -> dict:
        """Track the server's clock from the response's Date header."""
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            try:
                self._clock_offset = email.utils.parsedate_to_datetime(date).timestamp() - time.time()
                self._clock_seen = time.monotonic()
            except (TypeError, ValueError):
                pass
        return response

    def now(self) -> float:
        """The server's clock, from the Date header of a response of the last few seconds (one
        HEAD of the bucket when there is none). Date has 1 s resolution: good for TTLs of minutes."""
        if time.monotonic() - self._clock_seen > CLOCK_FRESH_S:
            with s3_errors("checking bucket", f"s3://{self.bucket}", self.settings.url):
                self._seen(self.client.head_bucket(Bucket=self.bucket))
        return time.time() + self._clock_offset

    def _bucket_exists(self) -> bool:
        try:
            with s3_errors("checking bucket", f"s3://{self.bucket}", self.settings.url):
                self._seen(self.client.head_bucket(Bucket=self.bucket))
            return True
        except MissingObject:
            return False

    def check_location(self) -> None:
        if not self._bucket_exists():
            raise CatalogError(
                f"bucket s3://{self.bucket} does not exist on {self.settings.url}: "
                "create it with `e2gan catalog init`"
            )

    def create_location(self) -> None:
        if self._bucket_exists():
            return
        extra = {}
        if self.settings.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            with s3_errors("creating bucket", f"s3://{self.bucket}", self.settings.url):
                self.client.create_bucket(Bucket=self.bucket, **extra)
        except ConflictError:  # created by someone else meanwhile (409)
            pass

    # -- Store -----------------------------------------------------------------

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import IncompleteReadError, ResponseStreamingError

        for attempt in range(self.settings.retries + 1):
            try:
                with self._errors("reading", key):
                    response = self._seen(self.client.get_object(Bucket=self.bucket, Key=self._name(key)))
                    body = response["Body"]
                    try:
                        return body.read(), response.get("ETag", "")
                    except (ResponseStreamingError, IncompleteReadError):
                        # The object was replaced or deleted while streaming (file-backed servers):
                        # read it again rather than fail.
                        if attempt == self.settings.retries:
                            raise
                    finally:
                        body.close()
            except MissingObject:
                return None
        return None

    def read(self, key: str) -> bytes | None:
        found = self.read_tagged(key)
        return found[0] if found else None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with self._errors("checking", key):
                response = self._seen(self.client.head_object(Bucket=self.bucket, Key=self._name(key)))
        except MissingObject:
            return None
        return ObjectInfo(key, int(response.get("ContentLength", 0)), response["LastModified"].timestamp())

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self._errors("reading", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            body = response["Body"]
            try:
                yield from body.iter_chunks(chunk)
            finally:
                body.close()

    def _put(self, action: str, key: str, body: Any, content_type: str, **conditions: str) -> None:
        with self._errors(action, key):
            self._seen(
                self.client.put_object(
                    Bucket=self.bucket, Key=self._name(key), Body=body, ContentType=content_type, **conditions
                )
            )

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._put("writing", key, data, content_type)

    def upload(self, key: str, path: Path) -> None:
        with open(path, "rb") as handle:  # one PUT: the object appears whole
            self._put("uploading", key, handle, "application/octet-stream")

    def create(self, key: str, data: bytes) -> None:
        try:
            self._put("creating", key, data, "application/json", IfNoneMatch="*")
        except ConflictError:
            raise Exists(f"{self.uri_of(key)} already exists") from None

    def create_file(self, key: str, path: Path) -> None:
        try:
            with open(path, "rb") as handle:
                self._put("uploading", key, handle, "application/octet-stream", IfNoneMatch="*")
        except ConflictError:
            raise Exists(f"{self.uri_of(key)} already exists") from None

    def replace(self, key: str, data: bytes, etag: str | None) -> None:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self._put("writing", key, data, "application/json", **condition)
        except MissingObject:  # If-Match on an object deleted meanwhile (some servers answer 404)
            raise ConflictError(f"{self.uri_of(key)} was deleted concurrently") from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._errors("listing", prefix or "/"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._name(prefix)
            )
            for page in pages:
                self._seen(page)
                for obj in page.get("Contents", []):
                    name = obj["Key"]
                    if name.endswith("/"):
                        continue  # a folder marker, not an object
                    yield ObjectInfo(name[strip:], int(obj.get("Size", 0)), obj["LastModified"].timestamp())

    def list_folders(self, prefix: str) -> list[str]:
        full = self._name(prefix)
        names: list[str] = []
        with self._errors("listing", prefix or "/"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(full) :].rstrip("/"))
        return sorted(n for n in names if n)

    def delete(self, keys: Iterable[str]) -> None:
        names = [self._name(k) for k in keys]
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            with self._errors("deleting", f"{len(batch)} objects under {self.prefix or '/'}"):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": n} for n in batch], "Quiet": True}
                )
            failures = response.get("Errors", [])
            if failures:
                raise CatalogError(
                    f"could not delete {failures[0].get('Key')} and {len(failures) - 1} more: "
                    f"{failures[0].get('Code')}"
                )

    def conditional_writes_work(self) -> bool:
        """Probe: does the server refuse a create on a taken key, and a replace on a wrong ETag?
        The probe objects are always removed."""
        probe = f"{PROBE}/{uuid.uuid4().hex}"
        try:
            self.create(probe, b"{}")
            try:
                self.create(probe, b"{}")
                return False  # the second create of the same key was accepted
            except Exists:
                pass
            try:
                self.replace(probe, b"{}", '"00000000000000000000000000000000"')
                return False
            except ConflictError:
                return True
        except CatalogError as exc:
            if "access refused" in str(exc) or "cannot reach" in str(exc) or "timed out" in str(exc):
                raise
            return False  # e.g. 501 NotImplemented for the header
        finally:
            try:
                self.delete([probe])
            except CatalogError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
