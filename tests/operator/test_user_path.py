"""The user's path: `kubectl apply -f` a tiny ConceptAdapter → operator → RayJob → the KubeRay
stand-in runs the entrypoint → adapter published to the S3 test server → `kubectl get
conceptadapters` shows Ready with fidelity and version → `kubectl delete` honours
deletionPolicy: Delete.

Twice: with the fast fake trainer (the S3 plumbing: catalog settings from the defaults file,
credentials injected from a Secret, progress and deletion through S3), and with the real
`e2gan distill` (slow: Ray started by the trainer, on loopback; procedural teacher, a few steps)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from catalog import Catalog, S3Settings, open_catalog
from tests.harness.kuberay_standin import KubeRayStandIn
from tests.operator.process import REPO, start_operator

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi
    from tests.operator.conftest import S3TestServer

pytest_plugins = ["tests.harness.fixtures"]

TRAINER_ASSETS = REPO / "trainers" / "assets"


def _trainer_missing() -> str | None:
    e2gan = Path(sys.executable).with_name("e2gan")
    if not e2gan.is_file():
        return f"the trainer CLI is not installed ({e2gan}); pip install -e .[trainer]"
    if not any(TRAINER_ASSETS.glob("base-*.safetensors")):
        return f"the built-in base weights are not built yet (no {TRAINER_ASSETS}/base-*.safetensors)"
    return None


@pytest.mark.timeout(900)
@pytest.mark.parametrize("trainer", ["fake", pytest.param("real", marks=pytest.mark.slow)])
def test_kubectl_apply_to_published_adapter_and_back(
    e2gan_crds: KubeApi, s3_server: S3TestServer, tmp_path: Path, trainer: str
) -> None:
    bin_dir = Path(sys.executable).parent
    if trainer == "real":
        missing = _trainer_missing()
        if missing:
            pytest.skip(missing)
    else:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "e2gan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.operator.fake_trainer "$@"\n')
        (bin_dir / "e2gan").chmod(0o755)
    api = e2gan_crds
    ns = f"user-{trainer}-{os.getpid()}"
    bucket = f"e2gan-{trainer}-{os.getpid()}"
    # As a user does once per catalog: `e2gan catalog init` creates the bucket and catalog.json,
    # in explicit lock mode because rclone honours no conditional writes.
    from catalog import open_catalog as _open
    from catalog.settings import S3Settings as _Settings

    _open(f"s3://{bucket}/catalog", settings=_Settings.from_env(s3_server.env())).init(guard="lock")
    assert api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2gan-catalog"},
              "stringData": {"accesskey": s3_server.access_key, "secretkey": s3_server.secret_key}}
    assert api.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret)[0] == 201
    # The operator's defaults file: how Ray pods reach the catalog, credentials by Secret reference only.
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(yaml.safe_dump({"catalog": {"endpoint": s3_server.endpoint, "secure": False,
                                                    "region": s3_server.region, "credentialsSecret": "e2gan-catalog"}}))
    manifest = yaml.safe_load((REPO / "examples" / "concepts" / "tiny.yaml").read_text())
    manifest["spec"]["catalog"]["uri"] = f"s3://{bucket}/catalog"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(manifest))
    name = manifest["metadata"]["name"]

    pod_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "E2GAN_RAY_OBJECT_STORE_BYTES": str(256 * 1024**2)}
    operator_env = {"E2GAN_DEFAULTS_FILE": str(defaults), "E2GAN_POLL_SECONDS": "1", **s3_server.env()}
    with KubeRayStandIn(api.kubeconfig, ns, env=pod_env) as kuberay:
        op = start_operator(api.kubeconfig, [ns], tmp_path / "operator.log", env=operator_env)
        try:
            applied = api.kubectl("-n", ns, "apply", "-f", str(path))
            assert applied.returncode == 0, applied.stderr
            # Poll with kubectl (as a user watching it) until Ready, or stop at once on Failed.
            deadline, phase = time.monotonic() + 840, ""
            while phase not in ("Ready", "Failed") and time.monotonic() < deadline:
                time.sleep(1)
                got = api.kubectl("-n", ns, "get", f"conceptadapter/{name}", "-o", "jsonpath={.status.phase}")
                phase = got.stdout.strip()
            run = kuberay.runs[-1] if kuberay.runs else None
            assert phase == "Ready", (phase, run.output[-3000:] if run else "no run", op.log()[-3000:])
            table = api.kubectl("-n", ns, "get", "conceptadapters", name).stdout.splitlines()
            row = table[1].split()
            assert row[:3] == [name, "Ready", "pencil-sketch"] and "v1" in row and "dB" in table[1], table

            store = S3Settings.from_env(s3_server.env())
            (entry,) = open_catalog(f"s3://{bucket}/catalog", settings=store).versions("pencil-sketch")
            assert entry.version == "v1" and "psnr" in entry.metrics

            deleted = api.kubectl("-n", ns, "delete", f"conceptadapter/{name}", "--timeout=120s", timeout=150)
            assert deleted.returncode == 0, deleted.stderr
            if hasattr(Catalog, "series_owner"):  # the catalog records owners (issue 13): ours are removed
                assert open_catalog(f"s3://{bucket}/catalog", settings=store).versions("pencil-sketch") == []
        finally:
            op.stop()
