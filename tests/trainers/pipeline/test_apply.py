"""`e2gan apply` at each photo's own size, and its refusals (one line, exit 2, nothing written)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest, sha256_file
from trainers.pipeline.apply import ApplyError, apply_adapter, edit_size

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A real PEFT adapter on the built-in base, with non-zero LoRA weights so it edits."""
    from trainers.models.weights import load_generator
    from trainers.pipeline.resources import builtin_base_path
    from trainers.train.lora import attach_lora, save_adapter

    folder = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    model = attach_lora(load_generator(builtin_base_path()), {"down": 2, "self_attn": 2, "cross_attn": 2, "mlp": 2, "up": 2})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    save_adapter(model, folder)
    manifest = AdapterManifest(
        concept="pencil-sketch",
        prompt="turn the photo into a pencil sketch",
        base_model_digest=sha256_file(builtin_base_path()),
        ranks={"down": 2, "self_attn": 2, "cross_attn": 2, "mlp": 2, "up": 2},
        resolution=64,
    )
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json())
    return folder


def photo(path: Path, width: int, height: int, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_edit_size_keeps_the_photo_size_rounded_to_8_and_bounded():
    assert edit_size(512, 512) == (512, 512)
    assert edit_size(517, 300) == (512, 296)
    assert edit_size(4000, 3000, max_side=1024) == (1024, 768)
    assert edit_size(3, 3) == (8, 8)
    with pytest.raises(ApplyError, match="--max-side: 4 is below 8"):
        edit_size(100, 100, max_side=4)


def test_apply_writes_each_photo_at_its_own_size(adapter, tmp_path):
    images = [photo(tmp_path / "square.png", 512, 512), photo(tmp_path / "wide.jpg", 200, 120, seed=1)]
    seen: list[Path] = []
    written = apply_adapter(adapter, images, tmp_path / "out", on_image=seen.append)
    assert written == seen
    assert [Image.open(p).size for p in written] == [(512, 512), (200, 120)]
    # The edit is the adapter's output, not the photo passed through.
    edited = np.asarray(Image.open(written[0]), dtype=np.int16)
    assert np.abs(edited - np.asarray(Image.open(images[0]), dtype=np.int16)).mean() > 5


def test_max_side_bounds_a_large_photo(adapter, tmp_path):
    (out,) = apply_adapter(adapter, [photo(tmp_path / "big.png", 640, 320)], tmp_path / "out", max_side=256)
    assert Image.open(out).size == (256, 128)


def run_apply(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainers.cli", "apply", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: ["--max-side", "4", str(photo(d / "p.png", 16, 16))], "--max-side: 4 is below 8"),
        (lambda d: [str((d / "notes.png").write_text("not an image") and d / "notes.png")], "notes.png: not a readable image"),
        (lambda d: [str(d / "missing.png")], "missing.png: no such image file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(adapter, tmp_path, make, needle):
    args = make(tmp_path)
    result = run_apply(str(adapter), *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("e2gan: error: ") and needle in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_image_among_good_ones_writes_nothing(adapter, tmp_path):
    good = photo(tmp_path / "good.png", 64, 64)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ApplyError, match="bad.png: not a readable image"):
        apply_adapter(adapter, [good, tmp_path / "bad.png"], tmp_path / "out")
    assert not (tmp_path / "out").exists()



def test_apply_runs_with_the_embedding_stored_in_the_adapter_and_no_encoder(adapter, tmp_path, monkeypatch):
    import shutil

    import trainers.text
    from trainers.text.embedding import TEXT_EMBEDDING_NAME, save_text_embedding

    folder = tmp_path / "with-embedding"
    shutil.copytree(adapter, folder)
    save_text_embedding(folder, torch.randn(384), "all-minilm-l6-v2", "turn the photo into a pencil sketch")

    def no_encoder(*_a, **_k):
        raise AssertionError("apply must not load a text encoder when the adapter stores its embedding")

    monkeypatch.setattr(trainers.text, "load_text_encoder", no_encoder)
    (out,) = apply_adapter(folder, [photo(tmp_path / "p.png", 64, 48)], tmp_path / "out")
    assert Image.open(out).size == (64, 48)
    (folder / TEXT_EMBEDDING_NAME).write_bytes(b"garbage")
    with pytest.raises(ApplyError, match="text_embedding.safetensors: not a text embedding"):
        apply_adapter(folder, [photo(tmp_path / "q.png", 64, 48)], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_distill_refuses_a_base_trained_for_another_resolution(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("concept: pencil-sketch\nprompt: turn the photo into a pencil sketch\ntraining: {resolution: 32}\n")
    result = subprocess.run(
        [sys.executable, "-m", "trainers.cli", "distill", str(spec), "--catalog", str(tmp_path / "catalog")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("e2gan: error: ")]
    assert len(errors) == 1 and "trained at 64 px but training.resolution is 32" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "catalog").exists()
