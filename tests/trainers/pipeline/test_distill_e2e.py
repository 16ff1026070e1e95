"""`e2gan distill` end to end, run as a user runs it, through a real local Ray.

Checks: Tune ran ≥ 2 trials, the adapter loads onto a fresh base and reproduces the
outputs of the trained model (as captured in the exported ONNX graph), ONNX matches
torch, the manifest's digests match the files, and the catalog lists the version.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from e2gan_api.manifest import sha256_file

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def run_distill(spec: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "E2GAN_RAY_OBJECT_STORE_BYTES": str(256 * 1024**2)}
    env.pop("RAY_ADDRESS", None)  # each run starts its own local Ray, as a user's would
    return subprocess.run(
        [sys.executable, "-m", "trainers.cli", "distill", str(spec), "--json", *args],
        capture_output=True, text=True, timeout=900, env=env, cwd=spec.parent,
    )


TINY_SPEC = """\
concept: pencil-sketch
prompt: turn the photo into a pencil sketch
data: {pairs: 24, heldOut: 6, keepFraction: 0.5}
search: {ranks: [1, 2], trials: 2, parallelTrials: 2, steps: 6, earlyStopping: false}
training: {steps: 16, batchSize: 4, resolution: 64, learningRate: 0.005}  # the built-in base is a 64 px base
"""


def photo_folder(folder: Path) -> Path:
    """A small folder of real photographs (the ones scikit-learn and scikit-image ship)."""
    import shutil

    from trainers.sources.samples import sample_photo_paths

    folder.mkdir()
    for path in sample_photo_paths():
        shutil.copy(path, folder / path.name)
    return folder


def test_distill_publishes_a_verified_adapter(tmp_path):
    # A small folder of real photos as the source: 24 crops of 8 photos, split by photo.
    photos = photo_folder(tmp_path / "photos")
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY_SPEC.replace("data: {pairs: 24,", f"data: {{source: {photos}, pairs: 24,"))
    result = run_distill(spec, "--catalog", str(tmp_path / "catalog"), "--work-dir", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["version"] == "v1"

    from catalog import open_catalog

    cat = open_catalog(tmp_path / "catalog")
    pulled = cat.pull("pencil-sketch", tmp_path / "pulled")
    manifest = json.loads((pulled / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256_file(pulled / name) == digest["sha256"], name
        assert (pulled / name).stat().st_size == digest["size"]
    search = json.loads((pulled / "search.json").read_text())
    assert len(search["trials"]) >= 2 and search["chosen"]["ranks"] == manifest["ranks"]
    assert manifest["metrics"]["onnx_max_abs_diff"] < 1e-4
    assert manifest["metrics"]["fid"] is None and manifest["metrics"]["fid_status"].startswith("unavailable")

    # Honest splits: disjoint seeded random test/validation/train; published figures are the test split's.
    metrics, splits = manifest["metrics"], manifest["splits"]
    assert (splits["test"], splits["validation"], splits["pool"]) == (3, 3, 18) and splits["train"] == 9
    test = metrics["test"]
    assert metrics["psnr"] == test["psnr"] and test["psnr_ci95"][0] <= test["psnr"] <= test["psnr_ci95"][1]
    assert 0 < test["ssim"] <= 1 and test["sharpness_ratio"] > 0 and "psnr" in metrics["validation"]
    assert test["psnr"] > test["base_psnr"], "the adapter must beat the base on the test split"
    assert search["split"] == "validation" and "noise_db" in search
    # The E2GAN objective: λ·L1 + a PatchGAN scaled to 64 px, started from the one the built-in base ships.
    objective = manifest["objective"]
    assert objective["l1_weight"] == 100 and objective["adversarial_weight"] == 1 and objective["gan_loss"] == "lsgan"
    assert objective["discriminator"]["n_layers"] == 1 and objective["discriminator"]["ndf"] == 32
    assert objective["discriminator_init"] == "base"
    # The base's discriminator fitted, so no fresh-start note (with --json, stdout holds only the JSON line).
    log = (tmp_path / "work" / "logs" / "e2gan.log").read_text()
    assert "starts a fresh" not in log and "starts a fresh" not in result.stdout
    # The fine-tune ran its steps (too few to plateau) and says how it ended.
    assert manifest["fine_tune"]["last_step"] == 16 and manifest["fine_tune"]["stopped_early"] is False
    assert [step for step, _ in manifest["fine_tune"]["checks"]] == [16]
    # LoRA stored in fp16.
    from safetensors.torch import load_file

    assert manifest["adapter_dtype"] == "fp16"
    assert {v.dtype for v in load_file(str(pulled / "adapter_model.safetensors")).values()} == {torch.float16}
    assert metrics["adapter_size_ratio"] == round(metrics["student_bytes"] / metrics["adapter_bytes"], 2)

    # A fresh base from disk + the pulled adapter reproduce the trained model's outputs.
    from trainers.export.onnx import ort_run
    from trainers.models.weights import load_generator
    from trainers.pipeline.resources import builtin_base_path
    from trainers.text import load_text_encoder
    from trainers.train.lora import load_adapter, ranks_of

    assert manifest["base_model_digest"] == sha256_file(builtin_base_path())
    model = load_adapter(load_generator(builtin_base_path()), pulled)
    assert ranks_of(model) == manifest["ranks"]
    x = torch.from_numpy(np.random.default_rng(5).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32))
    text = load_text_encoder(None).encode([manifest["prompt"]]).expand(2, -1)
    with torch.no_grad():
        ours = model(x, text).numpy()
    assert np.abs(ort_run(pulled / "model.onnx", x.numpy()) - ours).max() < 1e-4

    records = (tmp_path / "work" / "pairs" / "manifest.jsonl").read_text().splitlines()
    # Selection before synthesis: the teacher edited the test and validation sources and the
    # k-means-kept half of the training pool (3 + 3 + 9 of 24), nothing more.
    assert len(records) == 15
    assert manifest["teacher"]["images"] == 15 and manifest["teacher"]["sources"] == 24
    assert manifest["teacher"]["seconds"] > 0

    assert manifest["splits"]["photos"] == 8
    assert (pulled / "text_embedding.safetensors").is_file()

    # `e2gan apply` runs the pulled adapter on a 512x512 photo and a 48x40 one, each at its own size.
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    applied = subprocess.run(
        [sys.executable, "-m", "trainers.cli", "apply", str(pulled), str(photos / "astronaut.png"), str(tmp_path / "photo.png"),
         "--out", str(tmp_path / "ed")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert Image.open(tmp_path / "ed" / "astronaut-pencil-sketch.png").size == (512, 512)
    assert Image.open(tmp_path / "ed" / "photo-pencil-sketch.png").size == (40, 48)


def test_a_bad_perceptual_weights_path_is_refused_before_any_work(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY_SPEC.replace("learningRate: 0.005}", f"learningRate: 0.005, perceptualWeights: {tmp_path / 'vgg.pth'}}}"))
    result = run_distill(spec, "--catalog", str(tmp_path / "catalog"), "--work-dir", str(tmp_path / "work"))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "training.perceptualWeights" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "catalog").exists() or not any((tmp_path / "catalog").rglob("manifest.json"))


def test_distill_with_a_tiny_instruct_pix2pix_teacher(tmp_path):
    from trainers.teachers.tiny import build_tiny_pipeline

    folder = build_tiny_pipeline("instruct-pix2pix", tmp_path / "ip2p")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        TINY_SPEC.replace("data: {pairs: 24", "data: {pairs: 12").replace("heldOut: 6", "heldOut: 4")
        # The search and the fine-tune are the other tests' subject: one short trial here.
        .replace("search: {ranks: [1, 2], trials: 2, parallelTrials: 2, steps: 6,", "search: {ranks: [1], trials: 1, "
                 "parallelTrials: 1, steps: 2,").replace("training: {steps: 16,", "training: {steps: 4,")
        + f"teacher: {{kind: instruct-pix2pix, model: {folder}, steps: 2, batchSize: 4}}\nexport: {{fp16: false}}\n"
    )
    # A relative --work-dir, as a user types it (run_distill runs in tmp_path): Ray Tune and
    # Train take absolute storage paths only, so distill must resolve it.
    result = run_distill(spec, "--no-publish", "--work-dir", "work")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "work" / "adapter" / "manifest.json").read_text())
    assert manifest["teacher"]["id"].startswith("instruct-pix2pix/") and manifest["teacher"]["filtered"] == 0
    assert manifest["pairs_synthesized"] == 8  # 2 test + 2 validation + half of the 8 training sources
    assert not (tmp_path / "catalog").exists()
