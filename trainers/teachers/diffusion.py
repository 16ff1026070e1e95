"""DiffusionTeacher: InstructPix2Pix or SDEdit (img2img) from a local diffusers folder.

Checks run when the teacher is built (folder layout, UNet channels, tokenizer size), so
a bad model fails before any source is read; the pipeline itself loads on first use and
is dropped when the teacher is pickled (a Ray actor rebuilds it where it runs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.teachers.base import TeacherUnavailable, check_images, per_image_seeds
from trainers.teachers.layout import EXPECTED_LAYOUT, check_layout, folder_digest
from trainers.text.hub import (
    ALLOW_HUB_ENV,
    TokenizerFilesMissing,
    check_tokenizer,
    hub_allowed,
    prepare_offline,
)

log = logging.getLogger(__name__)

PIPELINE_CLASSES = {
    "instruct-pix2pix": "StableDiffusionInstructPix2PixPipeline",
    "sdedit": "StableDiffusionImg2ImgPipeline",
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["model_index.json", "unet/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*"]
HUB_SKIP = ["*.ckpt", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "*fp16*", "*non_ema*"]


def resolve_model_folder(model: str) -> Path:
    """A local folder for model: the path itself, or the hub snapshot of a hub id.

    Hub ids resolve from the local cache only, unless E2GAN_ALLOW_HUB=1.
    """
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        return path
    prepare_offline()
    from huggingface_hub import snapshot_download

    allowed = hub_allowed()
    try:
        return Path(
            snapshot_download(
                model, allow_patterns=HUB_FILES, ignore_patterns=HUB_SKIP, local_files_only=not allowed
            )
        )
    except Exception as exc:
        if allowed:
            raise TeacherUnavailable(
                f"could not download teacher model {model!r} from the hub: {exc}"
            ) from exc
        raise TeacherUnavailable(
            f"teacher model {model!r} is neither a local folder nor in the local hub cache, and network "
            f"downloads are off (set {ALLOW_HUB_ENV}=1 to allow them); give a local folder with {EXPECTED_LAYOUT}"
        ) from exc


def _resolve_dtype(name: str, device: str) -> str:
    if name == "fp16" and device == "cpu":
        log.warning("teacher dtype fp16 is not supported on the CPU; using fp32")
        return "fp32"
    return name


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


class DiffusionTeacher:
    """A diffusers image-editing pipeline behind the Teacher interface."""

    def __init__(
        self,
        spec: TeacherSpec,
        device: str | None = None,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
    ) -> None:
        if spec.kind not in PIPELINE_CLASSES:
            raise ValueError(f"DiffusionTeacher handles {', '.join(PIPELINE_CLASSES)}, not {spec.kind!r}")
        if not spec.model:
            raise TeacherUnavailable(f"teacher.model is required for a {spec.kind} teacher")
        import torch

        self.spec = spec
        self.kind = spec.kind
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype_name = _resolve_dtype(spec.dtype, self.device)
        self.vae_slicing = vae_slicing
        self.vae_tiling = vae_tiling
        self.folder = resolve_model_folder(spec.model)
        check_layout(self.folder, self.kind)
        self._tokenizer = self._load_tokenizer()
        self._digest = folder_digest(self.folder)
        self._pipe: Any = None

    def _load_tokenizer(self) -> Any:
        prepare_offline()
        from transformers import CLIPTokenizer

        folder = self.folder / "tokenizer"
        try:
            tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
            check_tokenizer(tokenizer, folder)
        except (TokenizerFilesMissing, OSError, ValueError) as exc:
            raise TeacherUnavailable(
                f"{exc}; a {self.kind} teacher needs a folder with {EXPECTED_LAYOUT}"
            ) from exc
        return tokenizer

    @property
    def id(self) -> str:
        s = self.spec
        settings = f"steps={s.steps},gs={s.guidance_scale:g}"
        settings += (
            f",igs={s.image_guidance_scale:g}"
            if self.kind == "instruct-pix2pix"
            else f",strength={s.strength:g}"
        )
        if self.dtype_name != "fp32":
            settings += f",dtype={self.dtype_name}"
        return f"{self.kind}/{self._digest}/{settings}"

    @property
    def pipeline(self) -> Any:
        if self._pipe is None:
            self._pipe = self._load_pipeline()
        return self._pipe

    def _load_pipeline(self) -> Any:
        prepare_offline()
        import diffusers
        import torch

        cls = getattr(diffusers, PIPELINE_CLASSES[self.kind])
        try:
            pipe = cls.from_pretrained(
                self.folder,
                tokenizer=self._tokenizer,
                dtype=_torch_dtype(self.dtype_name),
                local_files_only=True,
                # Training pairs must not be blacked out; the checker is also large.
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise TeacherUnavailable(
                f"could not load the {self.kind} pipeline from {self.folder}: {exc}"
            ) from exc
        pipe = pipe.to(self.device)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        # diffusers already picks scaled-dot-product attention (AttnProcessor2_0) on torch 2.
        if self.vae_slicing:
            pipe.vae.enable_slicing()
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        if self.spec.compile:
            if self.device.startswith("cuda"):
                pipe.unet = torch.compile(pipe.unet)
            else:
                log.warning("teacher.compile is for GPUs; not compiling the UNet on %s", self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        check_images(images)
        seeds = per_image_seeds(seed, len(images))
        out = np.empty_like(images)
        bs = self.spec.batch_size
        for start in range(0, len(images), bs):
            out[start : start + bs] = self._edit_batch(
                images[start : start + bs], prompt, seeds[start : start + bs]
            )
        return out

    def _edit_batch(self, images: np.ndarray, prompt: str, seeds: list[int]) -> np.ndarray:
        import torch

        pipe = self.pipeline
        # CPU generators: the same noise on every device, one stream per image.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
        kwargs: dict[str, Any] = {
            "prompt": [prompt] * len(images),
            "image": x,
            "num_inference_steps": self.spec.steps,
            "guidance_scale": self.spec.guidance_scale,
            "generator": generators,
            "output_type": "np",
        }
        if self.kind == "instruct-pix2pix":
            kwargs["image_guidance_scale"] = self.spec.image_guidance_scale
        else:
            kwargs["strength"] = self.spec.strength
        with torch.inference_mode():
            result = np.asarray(pipe(**kwargs).images, dtype=np.float32)
        edited = (np.clip(result, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if edited.shape != images.shape:
            # The pipeline rounds sizes to its VAE's multiple; give back the source size.
            from PIL import Image

            h, w = images.shape[1:3]
            edited = np.stack(
                [np.asarray(Image.fromarray(e).resize((w, h), Image.Resampling.BICUBIC)) for e in edited]
            )
        return edited

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pipe"] = None  # reloaded where the teacher is unpickled
        return state

    def __repr__(self) -> str:
        return f"DiffusionTeacher({self.id}, folder={self.folder}, device={self.device})"
