"""GPU-shaped teacher settings, checked on CPU with tiny pipelines: prompt embeddings once,
fixed compiled shapes, scheduler choice, the teacher's own resolution, dtype auto, LCM and CLIP paths."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from e2gan_api.spec import TeacherSpec, first_error
from trainers.sources import synthetic_scenes
from trainers.teachers import DiffusionTeacher, TeacherUnavailable, build_teacher
from trainers.teachers.clip_filter import ClipFilter
from trainers.teachers.memory import auto_batch_size
from trainers.teachers.tiny import build_tiny_clip


def _spec(pipelines: dict[str, Path], kind: str = "instruct-pix2pix", **kw: Any) -> TeacherSpec:
    return TeacherSpec(kind=kind, model=str(pipelines[kind]), steps=2, batch_size=2, **kw)


class CountingBackend:
    """A torch.compile backend (public API: any callable) that counts graph compilations."""

    def __init__(self) -> None:
        self.compiles = 0

    def __call__(self, gm: Any, example_inputs: Any) -> Any:
        self.compiles += 1
        return gm.forward


def test_prompt_embeddings_are_computed_once_per_prompt(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(_spec(tiny_pipelines), device="cpu")
    calls: list[int] = []
    teacher.pipeline.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    images = synthetic_scenes(5, 32, seed=0)
    teacher.edit(images, "make it winter", seed=list(range(5)))  # 3 pipeline calls
    assert len(calls) == 1, "prompt and empty prompt embedded together, once"
    teacher.edit(images[:2], "make it winter", seed=[7, 8])
    assert len(calls) == 1
    teacher.edit(images[:2], "make it night", seed=[7, 8])
    assert len(calls) == 2


@pytest.mark.slow
def test_compiled_unet_does_not_recompile_on_a_short_last_chunk(tiny_pipelines: dict[str, Path]) -> None:
    import torch

    torch.compiler.reset()  # no compiled graph left over from another test
    backend = CountingBackend()
    spec = _spec(tiny_pipelines, "sdedit", compile="default")
    teacher = DiffusionTeacher(spec, device="cpu", compile_backend=backend)
    teacher.warmup()
    after_warmup = backend.compiles
    assert after_warmup >= 1, "the UNet was compiled during the warm-up"
    images = synthetic_scenes(3, 32, seed=1)  # one full batch of 2, then a short one of 1
    out = teacher.edit(images, "p", seed=[1, 2, 3])
    assert out.shape == images.shape
    assert backend.compiles == after_warmup, "the short chunk was padded onto the compiled shape"
    # The counter does see a new shape: calling the compiled UNet on another batch recompiles.
    pipe = teacher.pipeline
    latents = torch.zeros(1, 4, 16, 16)
    with torch.inference_mode():
        pipe.unet(latents, torch.tensor(10), encoder_hidden_states=torch.zeros(1, 77, 32))
    assert backend.compiles > after_warmup


def test_eager_short_chunk_is_not_padded(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(_spec(tiny_pipelines, "sdedit"), device="cpu")
    seen: list[int] = []
    teacher.pipeline.unet.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    teacher.edit(synthetic_scenes(3, 32, seed=1), "p", seed=[1, 2, 3])
    assert set(seen) == {4, 2}, "2-way guidance: batches of 2 and 1 images, no padding without compile"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("default", "EulerAncestralDiscreteScheduler"),  # what the tiny InstructPix2Pix folder ships
        ("dpm-solver++", "DPMSolverMultistepScheduler"),
        ("unipc", "UniPCMultistepScheduler"),
        ("euler-a", "EulerAncestralDiscreteScheduler"),
    ],
)
def test_scheduler_selection(name: str, cls: str, tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(_spec(tiny_pipelines, scheduler=name), device="cpu")
    scheduler = teacher.pipeline.scheduler
    assert type(scheduler).__name__ == cls
    assert scheduler.config.beta_end == 0.012, "configured from the folder's scheduler"
    if name == "dpm-solver++":
        assert scheduler.config.algorithm_type == "dpmsolver++"
        out = teacher.edit(synthetic_scenes(2, 32, seed=0), "p", seed=[1, 2])
        assert out.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("resolution", [16, 64])
def test_edits_at_the_teacher_resolution_and_back(
    resolution: int, tiny_pipelines: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        teacher = DiffusionTeacher(_spec(tiny_pipelines, resolution=resolution), device="cpu")
    warnings = [r for r in caplog.records if "below 256" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    seen: list[tuple[int, ...]] = []
    teacher.pipeline.vae.encoder.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    images = synthetic_scenes(2, 32, seed=3)
    out = teacher.edit(images, "p", seed=[1, 2])
    assert seen[0][-2:] == (resolution, resolution), "the pipeline saw the teacher's resolution"
    assert out.shape == images.shape and out.dtype == np.uint8
    assert f"res={resolution}" in teacher.id


def test_non_square_keeps_aspect_at_the_teacher_resolution(tiny_pipelines: dict[str, Path]) -> None:
    teacher = DiffusionTeacher(_spec(tiny_pipelines, "sdedit", resolution=64), device="cpu")
    seen: list[tuple[int, ...]] = []
    teacher.pipeline.vae.encoder.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    x = np.random.default_rng(0).integers(0, 256, (1, 24, 48, 3), dtype=np.uint8)
    assert teacher.edit(x, "p", seed=0).shape == x.shape
    assert seen[0][-2:] == (32, 64)


def test_dtype_auto_is_fp32_on_cpu_and_explicit_values_stay(tiny_pipelines: dict[str, Path]) -> None:
    assert TeacherSpec().dtype == "auto" and TeacherSpec().batch_size is None
    auto = DiffusionTeacher(_spec(tiny_pipelines), device="cpu")
    assert auto.dtype_name == "fp32" and "dtype" not in auto.id
    assert DiffusionTeacher(_spec(tiny_pipelines, dtype="bf16"), device="cpu").dtype_name == "bf16"
    cuda = DiffusionTeacher(_spec(tiny_pipelines), device="cuda")  # id only: nothing loads
    assert cuda.dtype_name == "bf16" and cuda.id.endswith(",dtype=bf16")


def test_batch_size_from_free_memory() -> None:
    gib = 1024**3
    assert auto_batch_size(139 * gib, 4 * gib, 512, "instruct-pix2pix") == 32  # an H200: capped
    assert auto_batch_size(24 * gib, 4 * gib, 512, "instruct-pix2pix") == 8
    assert auto_batch_size(24 * gib, 4 * gib, 256, "instruct-pix2pix") == 32
    assert auto_batch_size(6 * gib, 4 * gib, 512, "sdedit") == 1
    assert auto_batch_size(8 * gib, 4 * gib, 512, "sdedit") > auto_batch_size(8 * gib, 4 * gib, 512, "instruct-pix2pix")


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"scheduler": "ddim"}, "scheduler"),
        ({"resolution": 500}, "resolution"),
        ({"resolution": 1032}, "resolution"),
        ({"scheduler": "lcm"}, "lcmLora"),
        ({"kind": "instruct-pix2pix", "scheduler": "lcm", "lcmLora": "/x"}, "sdedit"),
        ({"lcmLora": "/x"}, "lcmLora"),
    ],
)
def test_bad_teacher_fields_name_the_field(update: dict[str, Any], field: str) -> None:
    from e2gan_api.spec import first_error

    with pytest.raises(ValidationError) as info:
        TeacherSpec.model_validate({"kind": "sdedit", "model": "/m", **update})
    line = first_error(info.value)
    assert field in line and "\n" not in line


def test_compile_refuses_the_old_boolean_with_its_replacement() -> None:
    # The CRD's `compile` is a string: the CLI refuses what the API server refuses, and says the fix.
    for old, fix in ((True, "use default"), (False, "use off")):
        with pytest.raises(ValueError) as info:
            TeacherSpec.model_validate({"compile": old})
        line = first_error(info.value)
        assert "teacher.compile: " in line and "old boolean form" in line and fix in line and "\n" not in line
    assert TeacherSpec(compile="max-autotune").compile == "max-autotune"


def test_missing_lcm_lora_names_the_field(tiny_pipelines: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec(tiny_pipelines, "sdedit", scheduler="lcm", lcm_lora=str(tmp_path / "nowhere"))
    with pytest.raises(TeacherUnavailable, match=r"^teacher.lcmLora: .*nowhere"):
        build_teacher(spec, "c")


def test_lcm_scheduler_with_an_lcm_lora(tiny_pipelines: dict[str, Path], tmp_path: Path) -> None:
    import diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(tiny_pipelines["sdedit"])
    pipe.unet.add_adapter(LoraConfig(r=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
    diffusers.StableDiffusionImg2ImgPipeline.save_lora_weights(
        tmp_path / "lcm", unet_lora_layers=get_peft_model_state_dict(pipe.unet)
    )
    spec = _spec(tiny_pipelines, "sdedit", scheduler="lcm", lcm_lora=str(tmp_path / "lcm"), guidance_scale=1.0)
    teacher = build_teacher(spec, "c")
    plain = build_teacher(_spec(tiny_pipelines, "sdedit", guidance_scale=1.0), "c")
    assert type(teacher.pipeline.scheduler).__name__ == "LCMScheduler"
    assert ",scheduler=lcm,lcm=" in teacher.id and teacher.id != plain.id
    images = synthetic_scenes(2, 32, seed=0)
    out = teacher.edit(images, "p", seed=[1, 2])
    assert out.shape == images.shape


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_clip_filter_scores_directions(tiny_clip: Path) -> None:
    clip = ClipFilter(str(tiny_clip), threshold=0.2)
    sources = synthetic_scenes(4, 32, seed=0)
    targets = 255 - sources
    scores = clip.scores(sources, targets, "invert the colours")
    assert scores.shape == (4,) and np.all(np.abs(scores) <= 1.0 + 1e-5)
    assert np.allclose(clip.scores(sources, sources, "p"), 0.0), "an edit that changes nothing scores 0"
    assert not clip.keep(sources, sources, "p").any()
    assert ClipFilter(str(tiny_clip), threshold=-1.0).keep(sources, targets, "p").all()


def test_a_path_that_is_not_clip_names_the_field(tiny_pipelines: dict[str, Path]) -> None:
    spec = TeacherSpec(kind="procedural", clip_model=str(tiny_pipelines["sdedit"]))  # a diffusers folder
    with pytest.raises(TeacherUnavailable, match=r"^teacher.clipModel: .* is not a CLIP model folder"):
        build_teacher(spec, "old-photo")
