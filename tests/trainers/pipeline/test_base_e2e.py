"""`e2gan base` as a user runs it: killed mid-run, rerun, it resumes from its last checkpoint;
then continued with --init from the weights it wrote."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2gan_api.manifest import sha256_file
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


def start(tmp: Path, *extra: str, out: str = "base.safetensors", storage: str = "runs") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "E2GAN_RAY_OBJECT_STORE_BYTES": str(256 * 1024**2)}
    env.pop("RAY_ADDRESS", None)  # each run starts its own local Ray, as a user's would
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.cli", "base", str(tmp / "base.yaml"), "--out", str(tmp / out),
         "--storage", str(tmp / storage), "--checkpoint-every", "20", *extra],
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
    assert json.loads(meta["objective"])["l1_weight"] == 100.0  # the base records the objective it was trained with

    # Continue that base: --init starts from its weights and the discriminator beside it, not random ones.
    third = start(tmp_path, "--init", str(tmp_path / "base.safetensors"), "--steps", "1",
                  out="continued.safetensors", storage="runs-continued")
    out, _ = third.communicate(timeout=600)
    assert third.returncode == 0, out[-3000:]
    assert "ships no discriminator" not in out
    continued = load_generator(tmp_path / "continued.safetensors").state_dict()
    fresh = type(model)(model.config).state_dict()

    def distance(state: dict) -> float:
        return max((state[k] - continued[k]).abs().max().item() for k in continued)

    assert distance(model.state_dict()) < 0.02 < distance(fresh)  # one Adam step (lr 1e-3) from the init
    record = json.loads(read_metadata(tmp_path / "continued.safetensors")["init"])
    assert record == {"sha256": sha256_file(tmp_path / "base.safetensors"), "steps": "60", "discriminator": True}
    assert (tmp_path / "continued.discriminator.safetensors").is_file()
