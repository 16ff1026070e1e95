"""Ray Train/Tune storage on the catalog's S3 endpoint (pyarrow S3FileSystem with endpoint override)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.ray_storage import storage_for
from catalog.settings import S3Settings
from tests.catalog.conftest import S3Server

pafs = pytest.importorskip("pyarrow.fs", reason="pyarrow is only in the trainer extra")


def test_local_uri_gives_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage_for("./runs") == (str(tmp_path / "runs"), None)
    assert storage_for(f"file://{tmp_path}/r") == (str(tmp_path / "r"), None)


def test_checkpoints_survive_a_server_restart(
    rclone_factory: Callable[..., S3Server], tmp_path: Path
) -> None:
    server = rclone_factory()
    bucket = server.new_bucket()
    path, fs = storage_for(f"s3://{bucket}/ray", settings=S3Settings.from_env(server.env()))
    assert path == f"{bucket}/ray" and fs.type_name == "py::s3-no-markers"

    # What Ray writes: a checkpoint folder per step under storage_path/name/.
    checkpoint = tmp_path / "checkpoint_000003"
    checkpoint.mkdir()
    (checkpoint / "state.pt").write_bytes(b"\x00" * 70_000)
    (checkpoint / "meta.json").write_text('{"step": 3}')
    pafs.copy_files(str(checkpoint), f"{path}/job/checkpoint_000003", destination_filesystem=fs)

    server.restart()
    _, fs = storage_for(f"s3://{bucket}/ray", settings=S3Settings.from_env(server.env()))
    found = fs.get_file_info(pafs.FileSelector(f"{path}/job", recursive=True))
    assert sorted(i.path for i in found if i.is_file) == [
        f"{path}/job/checkpoint_000003/meta.json",
        f"{path}/job/checkpoint_000003/state.pt",
    ]
    with fs.open_input_stream(f"{path}/job/checkpoint_000003/meta.json") as stream:
        assert stream.read() == b'{"step": 3}'


def test_wrong_secret_is_refused(moto_s3: S3Server) -> None:
    bucket = moto_s3.new_bucket()
    _, fs = storage_for(
        f"s3://{bucket}/ray",
        settings=S3Settings.from_env(moto_s3.env(E2GAN_S3_SECRET_KEY="wrong-secret-0000")),
    )
    with pytest.raises(OSError):
        with fs.open_output_stream(f"{bucket}/ray/x") as out:
            out.write(b"x")
    assert moto_s3.object_names(bucket) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_ray_train_job_resumes_from_its_s3_checkpoint(
    rclone_factory: Callable[..., S3Server], tmp_path: Path
) -> None:
    pytest.importorskip("ray.train", reason="ray[train] is only in the trainer extra")
    server = rclone_factory()
    bucket = server.new_bucket()
    root = Path(__file__).resolve().parents[2]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("E2GAN_", "AWS_", "RAY_ADDRESS"))}
    env = {
        **base,
        **server.env(),
        "PYTHONPATH": str(root),  # Ray workers import the train loop from the tests package
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every Ray listener on 127.0.0.1
        "RAY_AUTH_MODE": "disabled",
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "120",
        "HOME": str(tmp_path),  # Ray's own files stay in this test's folder
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.catalog.ray_resume_job", f"s3://{bucket}/ray", "job"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"] != "finished"  # run 1 died at step 3 ...
    assert (result["start"], result["step"]) == (3, 4)  # ... and run 2 began after step 2's checkpoint
    names = server.object_names(bucket)
    assert any(n.startswith("ray/job/checkpoint_") and n.endswith("/state.json") for n in names)
