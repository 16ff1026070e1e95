"""Turn minio/urllib3 failures into one-line CatalogErrors (never a secret, never a traceback wall).

Servers differ: MinIO and moto send XML errors (S3Error); rclone sends XML as text/xml, which
the SDK raises as InvalidResponseError; so classify by HTTP status and the <Code> in the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from catalog.errors import CatalogError, ConflictError
from catalog.store import MissingObject

_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}
CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}


def classify(exc: MinioException) -> tuple[int | None, str | None]:
    """(HTTP status, S3 error code) of any minio exception."""
    if isinstance(exc, S3Error):
        return getattr(exc.response, "status", None), exc.code
    if isinstance(exc, InvalidResponseError):
        status = getattr(exc, "_code", None)
        match = _CODE.search(str(getattr(exc, "_body", "") or ""))
        return status, match.group(1) if match else None
    if isinstance(exc, ServerError):
        return exc.status_code, None
    return None, None


def is_missing(exc: MinioException) -> bool:
    status, code = classify(exc)
    return code in MISSING or (code is None and status == 404)


def is_conflict(exc: MinioException) -> bool:
    status, code = classify(exc)
    return code in CONFLICT or status in (409, 412)


def describe(exc: BaseException, endpoint: str) -> str:
    """A short reason: the S3 code and message, or why the server could not be reached."""
    if isinstance(exc, MinioException):
        status, code = classify(exc)
        if code in DENIED:
            return f"access refused by {endpoint} ({code}): check the access key and secret"
        if code == "NoSuchBucket":
            return f"bucket does not exist on {endpoint}"
        message = exc.message if isinstance(exc, S3Error) and exc.message else ""
        return f"{code or 'error'} (HTTP {status}) from {endpoint}{': ' + message if message else ''}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS failure talking to {endpoint} (set E2GAN_S3_CA_FILE for a private CA)"
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        return f"cannot reach {endpoint} (connection refused or server down)"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return f"timed out talking to {endpoint}"
    return f"{type(exc).__name__} talking to {endpoint}"


@contextmanager
def s3_errors(action: str, uri: str, endpoint: str) -> Iterator[None]:
    """Re-raise S3/network failures of `action` on `uri` as CatalogError subclasses."""
    try:
        yield
    except CatalogError:
        raise
    except MinioException as exc:
        if is_missing(exc):
            raise MissingObject(f"missing object {uri}") from None
        if is_conflict(exc):
            raise ConflictError(f"{action} {uri}: changed concurrently") from None
        raise CatalogError(f"{action} {uri}: {describe(exc, endpoint)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CatalogError(f"{action} {uri}: {describe(exc, endpoint)}") from None
