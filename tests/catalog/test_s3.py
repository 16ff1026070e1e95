"""S3-specific behaviour against real servers: authentication, faults, restarts, TLS."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog import CatalogError, open_catalog
from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from catalog.settings import S3Settings
from tests.catalog.conftest import S3Server


def _open(server: S3Server, bucket: str, **env: str):  # noqa: ANN202 - catalog.Catalog
    return open_catalog(f"s3://{bucket}/cat", settings=S3Settings.from_env(server.env(**env)))


@pytest.mark.parametrize("wrong", ["secret", "key", "anonymous"])
def test_wrong_credentials_are_refused_and_nothing_is_written(
    moto_s3: S3Server, tmp_path: Path, wrong: str, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = moto_s3.new_bucket()
    make_adapter(tmp_path / "a")
    bad_secret = "not-the-secret-0123456789"
    env = {
        "secret": {"E2GAN_S3_SECRET_KEY": bad_secret},
        "key": {"E2GAN_S3_ACCESS_KEY": "AKIAUNKNOWNKEY000000"},
        "anonymous": {"E2GAN_S3_ACCESS_KEY": "", "E2GAN_S3_SECRET_KEY": ""},
    }[wrong]
    # moto answers unsigned requests with HTTP 500 when authentication is on (MinIO: 403).
    refused = "access refused" if wrong != "anonymous" else "access refused|HTTP 500"
    cat = _open(moto_s3, bucket, **env)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CatalogError, match=refused) as info:
        cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    with pytest.raises(CatalogError, match=refused):
        cat.write_progress("ns/job/1", {"phase": "train"})
    with pytest.raises(CatalogError, match=refused):
        cat.index()
    assert moto_s3.object_names(bucket) == []
    for text in (str(info.value), caplog.text):
        assert bad_secret not in text and moto_s3.secret_key not in text


def test_index_updates_use_conditional_put_or_lock_object(
    moto_s3: S3Server, rclone_s3: S3Server, tmp_path: Path
) -> None:
    make_adapter(tmp_path / "a")
    for server, mode in ((moto_s3, "etag"), (rclone_s3, "lock")):
        cat = _open(server, server.new_bucket())
        cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
        assert cat.store._mode == mode, server.kind  # moto honours If-Match; rclone ignores it


def test_objects_survive_a_server_restart(rclone_factory: Callable[..., S3Server], tmp_path: Path) -> None:
    server = rclone_factory()
    bucket = server.new_bucket()
    make_adapter(tmp_path / "a", seed=11)
    entry = _open(server, bucket).publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    server.restart()
    cat = _open(server, bucket)
    assert cat.index() == [entry]
    assert cat.verify().ok
    out = cat.pull("pencil-sketch", tmp_path / "out")
    assert (out / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "a" / "adapter_model.safetensors"
    ).read_bytes()


def test_server_stopped_mid_publish_then_retry(
    rclone_factory: Callable[..., S3Server], tmp_path: Path
) -> None:
    server = rclone_factory()
    bucket = server.new_bucket()
    cat = _open(server, bucket, E2GAN_S3_RETRIES="1")
    make_adapter(tmp_path / "a", seed=1)
    make_adapter(tmp_path / "b", seed=2)
    first = cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")

    upload, uploads = cat.store.upload, []

    def upload_then_stop_server(key: str, path: Path) -> None:
        uploads.append(key)
        if len(uploads) == 3:
            server.stop()  # killed with two files of v2 stored
        upload(key, path)

    cat.store.upload = upload_then_stop_server
    with pytest.raises(CatalogError, match=r"uploading s3://.*/v2/.*: cannot reach http://127\.0\.0\.1"):
        cat.publish(tmp_path / "b", base_digest=BASE, concept="pencil-sketch")
    del cat.store.upload
    with pytest.raises(CatalogError, match="cannot reach"):
        cat.index()

    server.start()
    assert cat.index() == [first]  # the half-written v2 never shows
    retried = cat.publish(tmp_path / "b", base_digest=BASE, concept="pencil-sketch")
    assert retried.version == "v3"  # v2 is still reserved by the dead attempt
    assert [e.version for e in cat.index()] == ["v1", "v3"]
    assert cat.verify().ok
    # Once the dead attempt's reservation expires, gc reclaims it and its two files.
    cat.reservation_ttl_s = 0
    doc = cat._read()
    assert [r.version for r in doc.reservations] == ["v2"]
    for reservation in doc.reservations:
        reservation.expires = 0
    cat.store.write("index.json", doc.model_dump_json().encode())
    report = cat.gc(grace_s=0)
    assert report.reservations == 1 and report.orphans == [f"adapters/{BASE[:16]}/pencil-sketch/v2"]
    assert not [n for n in server.object_names(bucket) if "/v2/" in n]
    assert [e.version for e in cat.index()] == ["v1", "v3"]


def test_errors_from_text_xml_servers_are_catalog_errors(rclone_s3: S3Server, tmp_path: Path) -> None:
    # rclone answers errors as text/xml: the SDK raises InvalidResponseError, not S3Error.
    cat = _open(rclone_s3, rclone_s3.new_bucket(), E2GAN_S3_SECRET_KEY="wrong-secret-wrong-secret")
    with pytest.raises(CatalogError, match="access refused"):
        cat.index()
    with pytest.raises(CatalogError, match="no published adapter"):
        _open(rclone_s3, rclone_s3.new_bucket()).show("missing")


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2gan test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_tls_with_a_custom_ca(rclone_factory: Callable[..., S3Server], tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="cryptography is needed to make a test CA")
    ca, cert, key = _tls_files(tmp_path)
    server = rclone_factory("--cert", str(cert), "--key", str(key))
    server.scheme = "https"
    make_adapter(tmp_path / "a")
    trusted = _open(server, "tls-bucket", E2GAN_S3_CA_FILE=str(ca))
    assert trusted.store.settings.secure
    entry = trusted.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert trusted.show("pencil-sketch") == entry
    untrusted = _open(server, "tls-bucket")  # system CAs only
    with pytest.raises(CatalogError, match="TLS failure"):
        untrusted.index()


def test_an_expired_lock_of_a_dead_publisher_is_taken_over(rclone_s3: S3Server, tmp_path: Path) -> None:
    import json

    bucket = rclone_s3.new_bucket()
    cat = _open(rclone_s3, bucket)
    cat.store.write("locks/index.json.lock", json.dumps({"token": "dead", "expires": 0}).encode())
    make_adapter(tmp_path / "a")
    assert cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch").version == "v1"
    assert cat.store._mode == "lock"
    assert not [n for n in rclone_s3.object_names(bucket) if n.startswith("cat/locks/")]
