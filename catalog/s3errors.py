"""Turn botocore failures into one-line CatalogErrors (never a secret, never a traceback wall).

Servers differ (MinIO, AWS, moto, rclone), so classify by HTTP status and the S3 error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from catalog.errors import CatalogError, ConflictError
from catalog.store import MissingObject

DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "403"}
MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "404"}
CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409", "BucketAlreadyOwnedByYou"}


def classify(exc: BaseException) -> tuple[int | None, str | None]:
    """(HTTP status, S3 error code) of a botocore ClientError; (None, None) for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None, None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return status, code


def is_missing(exc: BaseException) -> bool:
    status, code = classify(exc)
    return code in MISSING or (code is None and status == 404)


def is_conflict(exc: BaseException) -> bool:
    status, code = classify(exc)
    return code in CONFLICT or status in (409, 412)


def describe(exc: BaseException, endpoint: str) -> str:
    """A short reason: the S3 code and message, or why the server could not be reached."""
    from botocore import exceptions as bx

    status, code = classify(exc)
    if code is not None or status is not None:
        if code in DENIED or status == 403:
            return f"access refused by {endpoint} ({code}): check the access key and secret"
        if code == "NoSuchBucket":
            return f"bucket does not exist on {endpoint}: create it with `e2gan catalog init`"
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return f"{code or 'error'} (HTTP {status}) from {endpoint}{': ' + message if message else ''}"
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return (
            f"access refused: no S3 credentials for {endpoint} (set E2GAN_S3_ACCESS_KEY/SECRET_KEY, "
            "E2GAN_S3_CREDENTIALS_DIR, web identity, or E2GAN_S3_ANONYMOUS=true)"
        )
    if isinstance(exc, bx.SSLError):
        return f"TLS failure talking to {endpoint} (set E2GAN_S3_CA_FILE for a private CA)"
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError | TimeoutError):
        return f"timed out talking to {endpoint} (E2GAN_S3_CONNECT_TIMEOUT/E2GAN_S3_READ_TIMEOUT)"
    if isinstance(exc, bx.EndpointConnectionError | ConnectionError):
        return f"cannot reach {endpoint} (connection refused or server down)"
    return f"{type(exc).__name__} talking to {endpoint}"


@contextmanager
def s3_errors(action: str, uri: str, endpoint: str) -> Iterator[None]:
    """Re-raise S3/network failures of `action` on `uri` as CatalogError subclasses."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except CatalogError:
        raise
    except ClientError as exc:
        status, code = classify(exc)
        if code == "NoSuchBucket":
            raise CatalogError(f"{action} {uri}: {describe(exc, endpoint)}") from None
        if is_missing(exc):
            raise MissingObject(f"missing object {uri}") from None
        if is_conflict(exc):
            raise ConflictError(f"{action} {uri}: changed concurrently") from None
        raise CatalogError(f"{action} {uri}: {describe(exc, endpoint)}") from None
    except (BotoCoreError, OSError) as exc:
        raise CatalogError(f"{action} {uri}: {describe(exc, endpoint)}") from None
