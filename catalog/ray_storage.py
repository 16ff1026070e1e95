"""Ray Train/Tune storage on the catalog's S3 endpoint, so a killed job resumes from its checkpoint.

    path, fs = storage_for("s3://adapters/ray")
    RunConfig(name="job", storage_path=path, storage_filesystem=fs)

pyarrow is imported here only (lazily): the operator image has no pyarrow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.settings import S3Settings
from catalog.uri import parse_uri

if TYPE_CHECKING:
    import pyarrow.fs


def storage_for(
    uri: str | Path, settings: S3Settings | None = None
) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """(storage_path, storage_filesystem) for `ray.train.RunConfig`: a local absolute path and
    None, or "bucket/prefix" and a filesystem on E2GAN_S3_* (endpoint override, region, CA).

    Ray resumes a run whose `storage_path/name` exists, so a restarted job continues from its
    last checkpoint there."""
    where = parse_uri(uri)
    if where.scheme == "file":
        return str(where.path), None
    import pyarrow.fs

    # The AWS SDK inside pyarrow sends streaming (aws-chunked) checksummed uploads by default;
    # S3 servers other than AWS (rclone; older MinIO) answer 411 and pyarrow only logs the
    # failure when the stream closes. Plain signed uploads work everywhere. Set before the
    # filesystem (its client reads it); Ray workers need it in their environment too.
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    s = settings or S3Settings.from_env()
    credentials: dict[str, Any] = (
        {"access_key": s.access_key.get_secret_value(), "secret_key": s.secret_key.get_secret_value()}
        if s.access_key and s.secret_key
        else {"anonymous": True}
    )
    s3 = pyarrow.fs.S3FileSystem(
        **credentials,
        region=s.region,
        endpoint_override=s.endpoint,
        scheme="https" if s.secure else "http",
        tls_ca_file_path=str(s.ca_file) if s.ca_file else None,
        connect_timeout=s.connect_timeout_s,
        request_timeout=s.read_timeout_s,
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=max(1, s.retries)),
        # Small files (metadata, results) go up in one PUT instead of a multipart upload.
        allow_delayed_open=True,
    )
    from catalog.arrow_fs import NoDirectoryMarkers

    return f"{where.bucket}/{where.prefix}".rstrip("/"), pyarrow.fs.PyFileSystem(NoDirectoryMarkers(s3))
