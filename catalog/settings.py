"""S3 connection settings, read from the environment (never from specs, never logged).

Secrets are `SecretStr`, so `repr()`, logging and tracebacks show `**********`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from catalog.errors import CatalogError

ENV_PREFIX = "E2GAN_S3_"


class S3Settings(BaseModel):
    """How to reach the S3 endpoint that holds catalogs (MinIO in production)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(
        default="s3.amazonaws.com",
        description="host[:port] of the S3 server, without scheme (E2GAN_S3_ENDPOINT; "
        "an http:// or https:// prefix there sets `secure`)",
    )
    secure: bool = Field(
        default=True, description="HTTPS when true (E2GAN_S3_SECURE); default true so plain HTTP is a choice"
    )
    access_key: SecretStr | None = Field(
        default=None,
        description="E2GAN_S3_ACCESS_KEY, else `accesskey` in E2GAN_S3_CREDENTIALS_DIR, else "
        "AWS_ACCESS_KEY_ID; None for anonymous access",
    )
    secret_key: SecretStr | None = Field(default=None, description="the matching secret key")
    region: str = Field(
        default="us-east-1",
        description="E2GAN_S3_REGION; always passed so the SDK never probes bucket location "
        "(some S3 servers answer that call wrongly)",
    )
    ca_file: Path | None = Field(
        default=None, description="E2GAN_S3_CA_FILE: PEM bundle trusted for HTTPS instead of the system CAs"
    )
    session_token: SecretStr | None = Field(
        default=None, description="E2GAN_S3_SESSION_TOKEN (else AWS_SESSION_TOKEN): STS temporary credentials"
    )
    credentials_dir: Path | None = Field(
        default=None,
        description="E2GAN_S3_CREDENTIALS_DIR: a mounted Secret (accesskey, secretkey, optional "
        "sessiontoken); clients re-read it when its files change, so a rotated Secret needs no restart",
    )
    anonymous: bool = Field(
        default=False,
        description="E2GAN_S3_ANONYMOUS: unsigned requests. Without keys and without this, the AWS "
        "SDK's credential chain is used (web identity / IRSA, profiles, container credentials)",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="E2GAN_S3_CONNECT_TIMEOUT: seconds to open a connection"
    )
    read_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="E2GAN_S3_READ_TIMEOUT: seconds to wait for response bytes"
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=20,
        description="E2GAN_S3_RETRIES: retries after a failed request (default 2: 3 attempts); absorbs "
        "transient 5xx such as rclone's on concurrent first writes, while a dead server fails in seconds",
    )
    index_lock: Literal["auto", "etag", "lock"] = Field(
        default="auto",
        description="E2GAN_S3_INDEX_LOCK: the guard `e2gan catalog init` records in catalog.json. "
        "etag/auto: conditional writes (If-None-Match/If-Match; refused when the server ignores "
        "them); lock: the explicit lock-object mode for servers without conditional writes",
    )

    def current_keys(self) -> tuple[str | None, str | None, str | None, tuple[int, ...]]:
        """(access, secret, session token, stamp): re-read from the mounted Secret when the keys
        came from it (the stamp is its files' mtimes, so a client rebuilds when it changes)."""
        if self.credentials_dir is not None:
            files = [self.credentials_dir / n for n in ("accesskey", "secretkey", "sessiontoken")]
            stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in files)
            access, secret = _read(files[0]), _read(files[1])
            if access and secret:
                return access, secret, _read(files[2]) or None, stamp
        return (
            self.access_key.get_secret_value() if self.access_key else None,
            self.secret_key.get_secret_value() if self.secret_key else None,
            self.session_token.get_secret_value() if self.session_token else None,
            (),
        )

    @property
    def url(self) -> str:
        """The endpoint as a URL (no credentials), for pyarrow and messages."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        """Read E2GAN_S3_* (and the AWS_* fallbacks); raise CatalogError on contradictions."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        endpoint = env.get(f"{ENV_PREFIX}ENDPOINT", "").strip()
        secure_text = env.get(f"{ENV_PREFIX}SECURE", "").strip().lower()
        secure: bool | None = None
        if secure_text:
            if secure_text not in ("true", "false", "1", "0", "yes", "no"):
                raise CatalogError(f"{ENV_PREFIX}SECURE must be true or false, not {secure_text!r}")
            secure = secure_text in ("true", "1", "yes")
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
            if scheme not in ("http", "https"):
                raise CatalogError(f"{ENV_PREFIX}ENDPOINT: scheme must be http or https, not {scheme!r}")
            if secure is not None and secure != (scheme == "https"):
                raise CatalogError(f"{ENV_PREFIX}ENDPOINT scheme {scheme} contradicts {ENV_PREFIX}SECURE")
            secure = scheme == "https"
        endpoint = endpoint.rstrip("/")
        if "/" in endpoint:
            raise CatalogError(f"{ENV_PREFIX}ENDPOINT must be host[:port], without a path")
        if endpoint:
            values["endpoint"] = endpoint
        if secure is not None:
            values["secure"] = secure
        source, access, secret = _credentials(env)
        if access is not None:
            values["access_key"], values["secret_key"] = access, secret
        if region := env.get(f"{ENV_PREFIX}REGION", "").strip():
            values["region"] = region
        if ca := env.get(f"{ENV_PREFIX}CA_FILE", "").strip():
            if not Path(ca).is_file():
                raise CatalogError(f"{ENV_PREFIX}CA_FILE: no such file {ca}")
            values["ca_file"] = Path(ca)
        if retries := env.get(f"{ENV_PREFIX}RETRIES", "").strip():
            values["retries"] = retries
        for name, field in (("CONNECT_TIMEOUT", "connect_timeout_s"), ("READ_TIMEOUT", "read_timeout_s")):
            if text := env.get(f"{ENV_PREFIX}{name}", "").strip():
                values[field] = text
        token = env.get(f"{ENV_PREFIX}SESSION_TOKEN", "").strip() or env.get("AWS_SESSION_TOKEN", "").strip()
        if token and access is not None:
            values["session_token"] = token
        if source == f"{ENV_PREFIX}CREDENTIALS_DIR":  # only then are the files the keys' source
            values["credentials_dir"] = Path(env[source].strip())
        anonymous = env.get(f"{ENV_PREFIX}ANONYMOUS", "").strip().lower()
        if anonymous:
            if anonymous not in ("true", "false", "1", "0", "yes", "no"):
                raise CatalogError(f"{ENV_PREFIX}ANONYMOUS must be true or false, not {anonymous!r}")
            values["anonymous"] = anonymous in ("true", "1", "yes")
        if lock := env.get(f"{ENV_PREFIX}INDEX_LOCK", "").strip():
            values["index_lock"] = lock
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Field name and rule only: str(exc) would echo the input value.
            err = exc.errors()[0]
            raise CatalogError(f"S3 settings: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _credentials(env: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The first complete key pair: E2GAN_S3_* vars, the Secret folder, then AWS_* vars."""
    pairs: list[tuple[str, str | None, str | None]] = [
        (
            f"{ENV_PREFIX}ACCESS_KEY/{ENV_PREFIX}SECRET_KEY",
            env.get(f"{ENV_PREFIX}ACCESS_KEY"),
            env.get(f"{ENV_PREFIX}SECRET_KEY"),
        ),
    ]
    if folder := env.get(f"{ENV_PREFIX}CREDENTIALS_DIR", "").strip():
        pairs.append(
            (
                f"{ENV_PREFIX}CREDENTIALS_DIR",
                _read(Path(folder) / "accesskey"),
                _read(Path(folder) / "secretkey"),
            )
        )
    pairs.append(
        (
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
        )
    )
    for source, access, secret in pairs:
        access, secret = (access or "").strip() or None, (secret or "").strip() or None
        if access and secret:
            return source, access, secret
        if access or secret:
            raise CatalogError(
                f"S3 credentials from {source}: both the access key and the secret key are needed"
            )
    return "", None, None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}") from None
