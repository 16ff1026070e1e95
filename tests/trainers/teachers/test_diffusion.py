from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from e2gan_api.spec import TeacherSpec
from trainers.sources import synthetic_scenes
from trainers.teachers import DiffusionTeacher, TeacherUnavailable, build_teacher
from trainers.teachers.layout import folder_digest


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("kind", ["instruct-pix2pix", "sdedit"])
def test_tiny_pipeline_edits_two_images(kind: str, tiny_pipelines: dict[str, Path]) -> None:
    teacher = build_teacher(
        TeacherSpec(kind=kind, model=str(tiny_pipelines[kind]), steps=2, batch_size=2), "c"
    )
    assert isinstance(teacher, DiffusionTeacher)
    out = teacher.edit(synthetic_scenes(2, 32, seed=1), "put on sunglasses", seed=[3, 4])
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0], out[1])
    pipe = teacher.pipeline
    assert pipe._progress_bar_config.get("disable") is True
    assert type(next(iter(pipe.unet.attn_processors.values()))).__name__ == "AttnProcessor2_0"


def test_64px_images(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(
        TeacherSpec(kind="instruct-pix2pix", model=str(tiny_pipelines["instruct-pix2pix"]), steps=2)
    )
    assert teacher.edit(synthetic_scenes(2, 64, seed=0), "p", seed=0).shape == (2, 64, 64, 3)


def test_id_names_kind_digest_and_settings(tiny_pipelines: dict[str, Path]) -> None:
    folder = tiny_pipelines["instruct-pix2pix"]
    spec = TeacherSpec(
        kind="instruct-pix2pix", model=str(folder), steps=20, guidance_scale=7.5, image_guidance_scale=1.5
    )
    # res: the tiny pipeline's native size (UNet sample 16 x VAE factor 2), the default resolution.
    assert DiffusionTeacher(spec).id == f"instruct-pix2pix/{folder_digest(folder)}/steps=20,gs=7.5,igs=1.5,res=32"
    sd = TeacherSpec(kind="sdedit", model=str(tiny_pipelines["sdedit"]), steps=4, strength=0.6)
    assert DiffusionTeacher(sd).id.endswith("/steps=4,gs=7.5,strength=0.6,res=32")
    assert DiffusionTeacher(sd.model_copy(update={"scheduler": "unipc"})).id.endswith(",res=32,scheduler=unipc")
    assert DiffusionTeacher(spec.model_copy(update={"steps": 21})).id != DiffusionTeacher(spec).id


def test_digest_ignores_location(tiny_pipelines: dict[str, Path], tmp_path: Path) -> None:
    moved = _copy(tiny_pipelines["sdedit"], tmp_path / "elsewhere")
    assert folder_digest(moved) == folder_digest(tiny_pipelines["sdedit"])


def test_fp16_falls_back_to_fp32_on_cpu(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(
        TeacherSpec(kind="sdedit", model=str(tiny_pipelines["sdedit"]), dtype="fp16", steps=2), device="cpu"
    )
    assert teacher.dtype_name == "fp32" and "dtype" not in teacher.id


def test_bf16_on_cpu(tiny_pipelines: dict[str, Path]) -> None:
    spec = TeacherSpec(kind="sdedit", model=str(tiny_pipelines["sdedit"]), dtype="bf16", steps=2)
    teacher = DiffusionTeacher(spec, device="cpu", vae_slicing=True, vae_tiling=True)
    assert teacher.id.endswith(",dtype=bf16")
    assert teacher.edit(synthetic_scenes(1, 32, seed=0), "p", seed=0).shape == (1, 32, 32, 3)
    assert teacher.pipeline.vae.use_slicing and teacher.pipeline.vae.use_tiling


@pytest.mark.parametrize("remove", ["unet", "model_index.json", "scheduler", "vae/config.json"])
def test_incomplete_folder_names_layout(remove: str, tiny_pipelines: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(tiny_pipelines["instruct-pix2pix"], tmp_path / "broken")
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(TeacherUnavailable) as info:
        DiffusionTeacher(TeacherSpec(kind="instruct-pix2pix", model=str(folder)))
    message = str(info.value)
    assert str(folder) in message and remove.split("/")[0] in message
    for part in (
        "model_index.json",
        "unet/",
        "vae/",
        "text_encoder/",
        "tokenizer/ (vocab.json, merges.txt)",
        "scheduler/",
    ):
        assert part in message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(TeacherUnavailable, match="model_index.json"):
        DiffusionTeacher(TeacherSpec(kind="sdedit", model=str(tmp_path / "nowhere")))


def test_tokenizer_without_vocab_files_is_caught(tiny_pipelines: dict[str, Path], tmp_path: Path) -> None:
    # transformers 5 would silently build a 2-token tokenizer from what is left.
    folder = _copy(tiny_pipelines["sdedit"], tmp_path / "novocab")
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (folder / "tokenizer" / name).unlink()
    with pytest.raises(TeacherUnavailable, match=r"tokenizer files missing in .*novocab/tokenizer"):
        DiffusionTeacher(TeacherSpec(kind="sdedit", model=str(folder)))


def test_wrong_kind_for_checkpoint(tiny_pipelines: dict[str, Path]) -> None:
    with pytest.raises(TeacherUnavailable, match="set teacher.kind to instruct-pix2pix"):
        DiffusionTeacher(TeacherSpec(kind="sdedit", model=str(tiny_pipelines["instruct-pix2pix"])))


def test_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("E2GAN_ALLOW_HUB", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    start = time.perf_counter()
    with pytest.raises(TeacherUnavailable, match="E2GAN_ALLOW_HUB=1"):
        DiffusionTeacher(TeacherSpec(kind="instruct-pix2pix", model="timbrooks/instruct-pix2pix"))
    assert time.perf_counter() - start < 10.0
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_model_index_names_pipeline(tiny_pipelines: dict[str, Path]) -> None:
    index = json.loads((tiny_pipelines["instruct-pix2pix"] / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    assert (tiny_pipelines["instruct-pix2pix"] / "tokenizer" / "vocab.json").is_file()


def test_odd_sizes_come_back_as_given(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(TeacherSpec(kind="sdedit", model=str(tiny_pipelines["sdedit"]), steps=2))
    x = np.random.default_rng(0).integers(0, 256, (1, 33, 47, 3), dtype=np.uint8)
    assert teacher.edit(x, "p", seed=0).shape == x.shape


def test_compile_is_skipped_on_cpu(tiny_pipelines: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    spec = TeacherSpec(kind="sdedit", model=str(tiny_pipelines["sdedit"]), steps=2, compile="default")
    teacher = DiffusionTeacher(spec, device="cpu")
    assert type(teacher.pipeline.unet).__name__ == "UNet2DConditionModel"
    assert "not compiling" in caplog.text
