"""S3-specific behaviour against real servers: authentication, faults, restarts, TLS."""

from __future__ import annotations

import datetime as dt
import logging
import time
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


def _lock_mode(server: S3Server, bucket: str, **env: str):  # noqa: ANN202 - catalog.Catalog
    """rclone ignores conditional writes: its catalogs are created in the explicit lock mode."""
    cat = _open(server, bucket, **env)
    cat.init("lock")
    return cat


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


def test_guard_mode_is_chosen_at_init_and_fails_closed(
    moto_s3: S3Server, rclone_s3: S3Server, tmp_path: Path
) -> None:
    make_adapter(tmp_path / "a")
    # moto honours If-None-Match/If-Match: a first publish records the conditional guard.
    bucket = moto_s3.new_bucket()
    cat = _open(moto_s3, bucket)
    cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert cat.config().guard == "conditional"
    assert not [n for n in moto_s3.object_names(bucket) if "probe" in n]  # probes are removed
    # rclone ignores them: refused, nothing written, unless created in lock mode.
    bucket = rclone_s3.new_bucket()
    with pytest.raises(CatalogError, match="ignores conditional writes.*--guard lock"):
        _open(rclone_s3, bucket).publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert rclone_s3.object_names(bucket) == []
    locked = _lock_mode(rclone_s3, bucket)
    assert locked.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch").version == "v1"
    again = _open(rclone_s3, bucket)  # every later writer reads the guard from catalog.json
    assert again.config().guard == "lock"
    with pytest.raises(CatalogError, match="already uses guard 'lock'"):
        again.init("conditional", create_bucket=False)


def test_an_unknown_guard_mode_is_refused(moto_s3: S3Server, tmp_path: Path) -> None:
    bucket = moto_s3.new_bucket()
    cat = _open(moto_s3, bucket)
    cat.store.write("catalog.json", b'{"format": "e2gan-catalog/v2", "guard": "hope"}')
    make_adapter(tmp_path / "a")
    with pytest.raises(CatalogError, match="unknown guard mode 'hope'"):
        cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert moto_s3.object_names(bucket) == ["cat/catalog.json"]


def test_objects_survive_a_server_restart(rclone_factory: Callable[..., S3Server], tmp_path: Path) -> None:
    server = rclone_factory()
    bucket = server.new_bucket()
    make_adapter(tmp_path / "a", seed=11)
    entry = _lock_mode(server, bucket).publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
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
    cat.init("lock", reservation_ttl_s=8)
    make_adapter(tmp_path / "a", seed=1)
    make_adapter(tmp_path / "b", seed=2)
    first = cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")

    create_file, uploads = cat.store.create_file, []

    def upload_then_stop_server(key: str, path: Path) -> None:
        uploads.append(key)
        if len(uploads) == 3:
            server.stop()  # killed with two files of v2 stored
        create_file(key, path)

    cat.store.create_file = upload_then_stop_server
    with pytest.raises(CatalogError, match=r"s3://.*/v2/.*: cannot reach http://127\.0\.0\.1"):
        cat.publish(tmp_path / "b", base_digest=BASE, concept="pencil-sketch")
    del cat.store.create_file
    with pytest.raises(CatalogError, match="cannot reach"):
        cat.index()

    server.start()
    assert cat.index() == [first]  # the half-written v2 never shows
    retried = cat.publish(tmp_path / "b", base_digest=BASE, concept="pencil-sketch")
    assert retried.version == "v3"  # v2 is still claimed by the dead attempt
    assert [e.version for e in cat.index()] == ["v1", "v3"]
    assert cat.verify().ok
    with pytest.raises(CatalogError, match="at least the reservation TTL"):
        cat.gc(grace_s=1)
    assert cat.gc().orphans == []  # the dead attempt's claim has not expired yet
    v2 = f"adapters/{BASE[:16]}/pencil-sketch/v2"
    deadline = time.monotonic() + 30
    while (report := cat.gc()).orphans == [] and time.monotonic() < deadline:
        time.sleep(0.5)  # poll until the claim (8 s) and the grace have passed on the server's clock
    assert report.reservations == 1 and report.orphans == [v2]
    assert [n for n in server.object_names(bucket) if "/v2/" in n] == [f"cat/{v2}/claim.json"]
    assert [e.version for e in cat.index()] == ["v1", "v3"]
    assert cat.verify().ok


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
    trusted = _lock_mode(server, "tls-bucket", E2GAN_S3_CA_FILE=str(ca))
    assert trusted.store.settings.secure
    entry = trusted.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert trusted.show("pencil-sketch") == entry
    untrusted = _open(server, "tls-bucket")  # system CAs only
    with pytest.raises(CatalogError, match="TLS failure"):
        untrusted.index()


def test_an_expired_lock_of_a_dead_publisher_is_taken_over(rclone_s3: S3Server, tmp_path: Path) -> None:
    import json

    bucket = rclone_s3.new_bucket()
    cat = _lock_mode(rclone_s3, bucket)
    owner_lock = f"locks/adapters/{BASE[:16]}/pencil-sketch/owner.json.lock"
    cat.store.write(owner_lock, json.dumps({"token": "dead", "expires": 0}).encode())
    make_adapter(tmp_path / "a")
    assert cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch").version == "v1"
    assert not [n for n in rclone_s3.object_names(bucket) if n.startswith("cat/locks/")]


def test_fetch_base_refuses_bytes_that_do_not_match(
    moto_s3: S3Server, tmp_path: Path, s3_env
) -> None:
    from catalog.bases import fetch_base, publish_base
    from catalog.samples import write_safetensors

    s3_env(moto_s3)
    bucket = moto_s3.new_bucket()
    cat = open_catalog(f"s3://{bucket}/cat")
    write_safetensors(tmp_path / "base.safetensors", b"\x01" * 4096)
    published = publish_base(cat, tmp_path / "base.safetensors", "base")
    assert fetch_base(published["uri"], cache=tmp_path / "cache").read_bytes() == (
        tmp_path / "base.safetensors"
    ).read_bytes()
    from tests.catalog.conftest import Backend

    Backend("moto", "", server=moto_s3, bucket=bucket).flip_byte(f"{published['key']}/base.safetensors")
    with pytest.raises(CatalogError, match=r"base\.safetensors: downloaded bytes do not match sha256 [0-9a-f]{16}…; refusing them$"):
        fetch_base(published["uri"], cache=tmp_path / "cache2")
    assert not list((tmp_path / "cache2").rglob("*.safetensors"))


def test_credentials_are_reloaded_when_the_secret_files_change(moto_s3: S3Server, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "accesskey").write_text(moto_s3.access_key)
    (secret / "secretkey").write_text("rotated-away-0123456789")
    env = {k: v for k, v in moto_s3.env().items() if "KEY" not in k}
    cat = open_catalog(
        f"s3://{moto_s3.new_bucket()}/cat",
        settings=S3Settings.from_env({**env, "E2GAN_S3_CREDENTIALS_DIR": str(secret)}),
    )
    with pytest.raises(CatalogError, match="access refused"):
        cat.index()
    (secret / "secretkey").write_text(moto_s3.secret_key)  # the Secret is updated in place
    assert cat.index() == []  # same Catalog, new keys: no restart


def test_session_tokens_and_the_sdk_credential_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.s3 import make_session

    settings = S3Settings.from_env(
        {"E2GAN_S3_ACCESS_KEY": "AKIATEMP", "E2GAN_S3_SECRET_KEY": "s", "E2GAN_S3_SESSION_TOKEN": "tok"}
    )
    frozen = make_session(settings).get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("AKIATEMP", "tok")
    # No keys: the SDK's own chain supplies them, here web identity (IRSA-style) from the environment.
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    (tmp_path / "token").write_text("eyJ.web.identity")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/catalog")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    chain = S3Settings.from_env({})
    assert chain.access_key is None and not chain.anonymous
    assert make_session(chain).get_credentials().method == "assume-role-with-web-identity"
    assert S3Settings.from_env({"E2GAN_S3_ANONYMOUS": "true"}).anonymous
    with pytest.raises(CatalogError, match="ANONYMOUS must be true or false"):
        S3Settings.from_env({"E2GAN_S3_ANONYMOUS": "sometimes"})
    defaults = S3Settings()
    assert defaults.read_timeout_s <= 10 and defaults.connect_timeout_s <= 10 and defaults.retries + 1 == 3
