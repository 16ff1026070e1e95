"""S3 settings come from the environment or Secret files, are checked, and never show secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import CatalogError, open_catalog
from catalog.settings import S3Settings
from catalog.uri import parse_uri

SECRET = "s3cr3t-value-never-printed"


def test_endpoint_scheme_decides_secure() -> None:
    plain = S3Settings.from_env({"E2GAN_S3_ENDPOINT": "http://minio.storage:9000"})
    assert (plain.endpoint, plain.secure, plain.url) == (
        "minio.storage:9000",
        False,
        "http://minio.storage:9000",
    )
    assert S3Settings.from_env({"E2GAN_S3_ENDPOINT": "minio:9000"}).secure  # HTTPS unless told otherwise
    assert not S3Settings.from_env({"E2GAN_S3_ENDPOINT": "minio:9000", "E2GAN_S3_SECURE": "false"}).secure
    assert S3Settings.from_env({}).region == "us-east-1"
    with pytest.raises(CatalogError, match="contradicts"):
        S3Settings.from_env({"E2GAN_S3_ENDPOINT": "https://minio:9000", "E2GAN_S3_SECURE": "false"})
    with pytest.raises(CatalogError, match="SECURE must be true or false"):
        S3Settings.from_env({"E2GAN_S3_SECURE": "maybe"})
    with pytest.raises(CatalogError, match="without a path"):
        S3Settings.from_env({"E2GAN_S3_ENDPOINT": "http://minio:9000/bucket"})
    with pytest.raises(CatalogError, match="no such file"):
        S3Settings.from_env({"E2GAN_S3_CA_FILE": "/nonexistent/ca.pem"})
    with pytest.raises(CatalogError, match="index_lock"):
        S3Settings.from_env({"E2GAN_S3_INDEX_LOCK": "sometimes"})


def test_credentials_precedence(tmp_path: Path) -> None:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "accesskey").write_text("from-file\n")
    (secret_dir / "secretkey").write_text(f"{SECRET}\n")
    aws = {"AWS_ACCESS_KEY_ID": "from-aws", "AWS_SECRET_ACCESS_KEY": "aws-secret"}
    mounted = {"E2GAN_S3_CREDENTIALS_DIR": str(secret_dir), **aws}
    direct = {"E2GAN_S3_ACCESS_KEY": "direct", "E2GAN_S3_SECRET_KEY": "direct-secret", **mounted}

    def access(env: dict[str, str]) -> str | None:
        key = S3Settings.from_env(env).access_key
        return key.get_secret_value() if key else None

    assert access(direct) == "direct"
    assert access(mounted) == "from-file"
    assert S3Settings.from_env(mounted).secret_key.get_secret_value() == SECRET
    assert access(aws) == "from-aws"
    assert access({}) is None  # anonymous
    with pytest.raises(CatalogError, match="both the access key and the secret key"):
        S3Settings.from_env({"E2GAN_S3_ACCESS_KEY": "only-key"})


def test_secrets_never_printed(tmp_path: Path) -> None:
    settings = S3Settings.from_env(
        {
            "E2GAN_S3_ACCESS_KEY": "AKIAVISIBLE",
            "E2GAN_S3_SECRET_KEY": SECRET,
            "E2GAN_S3_ENDPOINT": "http://127.0.0.1:9",
            "E2GAN_S3_RETRIES": "0",
        }
    )
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in text and "AKIAVISIBLE" not in text
    cat = open_catalog("s3://bucket-x/p", settings=settings)
    assert cat.store.client.meta.region_name == "us-east-1"  # region always passed: no location lookups
    with pytest.raises(CatalogError) as info:
        cat.index()  # nothing listens on port 9
    assert "cannot reach http://127.0.0.1:9" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("uri", "scheme", "where"),
    [
        ("s3://adapters/team/prod/", "s3", "adapters|team/prod"),
        ("s3://adapters", "s3", "adapters|"),
        ("file:///srv/catalog", "file", "/srv/catalog"),
        ("/srv/catalog", "file", "/srv/catalog"),
    ],
)
def test_parse_uri(uri: str, scheme: str, where: str) -> None:
    parsed = parse_uri(uri)
    assert parsed.scheme == scheme
    assert (f"{parsed.bucket}|{parsed.prefix}" if scheme == "s3" else str(parsed.path)) == where


@pytest.mark.parametrize(
    "uri", ["", "http://host/x", "s3://A_Bad/x", "s3://key:secret@bucket/x", "s3://bkt/a/../b"]
)
def test_parse_uri_refuses(uri: str) -> None:
    with pytest.raises(CatalogError):
        parse_uri(uri)
