"""`e2gan base` as a user runs it: killed mid-run, rerun, it resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainers.models.weights import load_generator, read_metadata

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow

SPEC = """\
concepts:
  - {concept: negative, prompt: invert the colours}
  - {concept: winter, prompt: make it winter}
data: {pairs: 8, heldOut: 2}
training: {resolution: 16, steps: 60, batchSize: 2, maxSeconds: 600}
resources: {workers: 1, cpusPerWorker: 1}
width: 8
"""


def start(tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "E2GAN_RAY_OBJECT_STORE_BYTES": str(256 * 1024**2)}
    env.pop("RAY_ADDRESS", None)  # each run starts its own local Ray, as a user's would
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.cli", "base", str(tmp / "base.yaml"), "--out", str(tmp / "base.safetensors"),
         "--storage", str(tmp / "runs"), "--checkpoint-every", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp, start_new_session=True,
    )


def test_base_resumes_after_a_kill(tmp_path):
    (tmp_path / "base.yaml").write_text(SPEC)
    first = start(tmp_path)
    deadline = time.monotonic() + 400
    while not list((tmp_path / "runs").glob("base/checkpoint_*")):
        assert first.poll() is None, first.stdout.read()[-3000:] if first.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint within 400 s"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the driver, its local Ray and the train worker
    first.wait(timeout=30)
    assert not (tmp_path / "base.safetensors").exists()

    second = start(tmp_path)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]
    resumed = [line for line in out.splitlines() if "resuming base training from step" in line]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 5, out[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 60
    model = load_generator(tmp_path / "base.safetensors")
    meta = read_metadata(tmp_path / "base.safetensors")
    assert model.config.width == 8 and json.loads(meta["concepts"]) == ["negative", "winter"]
