"""DiffusionTeacher: InstructPix2Pix or SDEdit (img2img) from a local diffusers folder.

Checks run when the teacher is built (folder layout, UNet channels, tokenizer size), so
a bad model fails before any source is read; the pipeline itself loads on first use and
is dropped when the teacher is pickled (a Ray actor rebuilds it where it runs).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.teachers.base import TeacherUnavailable, check_images, per_image_seeds
from trainers.teachers.layout import EXPECTED_LAYOUT, check_layout, folder_digest
from trainers.teachers.memory import CPU_BATCH, auto_batch_size, free_gpu_bytes
from trainers.teachers.resize import resize, teacher_size, to_uint8
from trainers.teachers.schedulers import make_scheduler
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
MIN_GOOD_RESOLUTION = 256  # px: below this SD-family teachers produce garbage
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
    if name == "auto":
        # bf16 keeps fp32's range (no overflow in the VAE) at half the bytes; CPUs stay exact.
        return "fp32" if device == "cpu" else "bf16"
    if name == "fp16" and device == "cpu":
        log.warning("teacher dtype fp16 is not supported on the CPU; using fp32")
        return "fp32"
    return name


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def native_resolution(folder: Path) -> int:
    """The size the pipeline was trained at: UNet sample size times the VAE's downsampling."""
    unet = json.loads((folder / "unet" / "config.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    return int(unet.get("sample_size", 64)) * 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)


def weight_bytes(folder: Path) -> int:
    """Bytes of the UNet, VAE and text-encoder weight files (an upper bound on their GPU size)."""
    return sum(
        p.stat().st_size
        for part in ("unet", "vae", "text_encoder")
        for p in (folder / part).iterdir()
        if p.name.endswith((".safetensors", ".bin"))
    )


class DiffusionTeacher:
    """A diffusers image-editing pipeline behind the Teacher interface.

    Sources are edited at the teacher's own resolution and resized back (anti-aliased) to
    their size; the prompt's embeddings are computed once per prompt; outputs become uint8
    on the device. With compile on, every call has the same shape: a short batch is padded.
    compile_backend (a torch.compile backend) is for tests and benchmarks: with it the UNet
    is compiled on any device.
    """

    def __init__(
        self,
        spec: TeacherSpec,
        device: str | None = None,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        compile_backend: Any = None,
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
        self.compile_backend = compile_backend
        self.folder = resolve_model_folder(spec.model)
        check_layout(self.folder, self.kind)
        self.lcm_lora = check_lcm_lora(spec.lcm_lora) if spec.scheduler == "lcm" else None
        self.resolution = spec.resolution or native_resolution(self.folder)
        if self.resolution < MIN_GOOD_RESOLUTION:
            log.warning(
                "teacher.resolution %d px is below %d: Stable Diffusion-family teachers make poor edits "
                "there; set teacher.resolution to 512 (the training resolution is reached by downsampling)",
                self.resolution,
                MIN_GOOD_RESOLUTION,
            )
        self.batch_size = spec.batch_size or self._auto_batch_size()
        self._tokenizer = self._load_tokenizer()
        self._digest = folder_digest(self.folder)
        self._lcm_digest = folder_digest(self.lcm_lora) if self.lcm_lora and self.lcm_lora.is_dir() else None
        self._pipe: Any = None
        self._embeds: dict[str, tuple[Any, Any]] = {}

    def _auto_batch_size(self) -> int:
        # The Ray path resolves this once on a GPU and sets it in the spec, so every actor and
        # the plan agree; this is for a teacher used on its own.
        import torch

        if not self.device.startswith("cuda") or not torch.cuda.is_available():
            return CPU_BATCH
        return auto_batch_size(free_gpu_bytes(), weight_bytes(self.folder), self.resolution, self.kind)

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
    def compiled(self) -> bool:
        """Whether the UNet is (to be) compiled: then every call has batch_size images."""
        return self.spec.compile != "off" and (self.device.startswith("cuda") or self.compile_backend is not None)

    @property
    def id(self) -> str:
        s = self.spec
        settings = f"steps={s.steps},gs={s.guidance_scale:g}"
        settings += (
            f",igs={s.image_guidance_scale:g}"
            if self.kind == "instruct-pix2pix"
            else f",strength={s.strength:g}"
        )
        settings += f",res={self.resolution}"
        if s.scheduler != "default":
            settings += f",scheduler={s.scheduler}"
        if self.lcm_lora is not None:
            settings += f",lcm={self._lcm_digest or self.lcm_lora.name}"
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
        pipe.scheduler = make_scheduler(self.spec.scheduler, pipe.scheduler)
        if self.lcm_lora is not None:
            try:
                pipe.load_lora_weights(str(self.lcm_lora))
            except (OSError, ValueError, KeyError) as exc:
                raise TeacherUnavailable(f"teacher.lcmLora: could not load {self.lcm_lora}: {exc}") from exc
            pipe.fuse_lora()  # merged once: no LoRA cost per step
        pipe = pipe.to(self.device)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        # diffusers already picks scaled-dot-product attention (AttnProcessor2_0) on torch 2.
        if self.vae_slicing:
            pipe.vae.enable_slicing()
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        if self.compiled:
            # Static shapes (dynamic=False): padding keeps every call on the one compiled graph.
            if self.compile_backend is not None:
                pipe.unet = torch.compile(pipe.unet, backend=self.compile_backend, dynamic=False)
            else:
                pipe.unet = torch.compile(pipe.unet, mode=self.spec.compile, dynamic=False)
        elif self.spec.compile != "off":
            log.warning("teacher.compile is for GPUs; not compiling the UNet on %s", self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def embeddings(self, prompt: str) -> tuple[Any, Any]:
        """(prompt, empty-prompt) text embeddings [1, L, D], computed once per prompt."""
        if prompt not in self._embeds:
            import torch

            pipe = self.pipeline
            tokens = pipe.tokenizer(
                [prompt, ""],
                padding="max_length",
                max_length=pipe.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = pipe.text_encoder(tokens.input_ids.to(self.device))[0]
            hidden = hidden.to(pipe.unet.dtype)
            self._embeds[prompt] = (hidden[:1], hidden[1:])
        return self._embeds[prompt]

    def warmup(self) -> None:
        """One full batch at the teacher's resolution: kernels chosen, the UNet compiled."""
        size = self.resolution
        self.edit(np.zeros((self.batch_size, size, size, 3), np.uint8), "warm-up", 0)

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        check_images(images)
        seeds = per_image_seeds(seed, len(images))
        out = np.empty_like(images)
        bs = self.batch_size
        for start in range(0, len(images), bs):
            out[start : start + bs] = self._edit_batch(
                images[start : start + bs], prompt, seeds[start : start + bs]
            )
        return out

    def _edit_batch(self, images: np.ndarray, prompt: str, seeds: list[int]) -> np.ndarray:
        import torch

        pipe = self.pipeline
        n = len(images)
        if self.compiled and n < self.batch_size:
            # A short last chunk would recompile: pad with copies of its last image, drop them after.
            pad = self.batch_size - n
            images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
            seeds = seeds + [seeds[-1]] * pad
        # CPU generators: the same noise on every device, one stream per image.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        h, w = images.shape[1:3]
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        x = resize(x, teacher_size(h, w, self.resolution))
        positive, negative = self.embeddings(prompt)
        kwargs: dict[str, Any] = {
            "prompt_embeds": positive.expand(len(images), -1, -1),
            "negative_prompt_embeds": negative.expand(len(images), -1, -1),
            "image": x,
            "num_inference_steps": self.spec.steps,
            "guidance_scale": self.spec.guidance_scale,
            "generator": generators,
            "output_type": "pt",
        }
        if self.kind == "instruct-pix2pix":
            kwargs["image_guidance_scale"] = self.spec.image_guidance_scale
        else:
            kwargs["strength"] = self.spec.strength
        with torch.inference_mode():
            result = pipe(**kwargs).images
            # Back to the source size (anti-aliased when shrinking), uint8 before leaving the device.
            edited = to_uint8(resize(result.float(), (h, w)))[:n].cpu().numpy()
        return edited

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pipe"] = None  # reloaded where the teacher is unpickled
        state["_embeds"] = {}
        return state

    def __repr__(self) -> str:
        return f"DiffusionTeacher({self.id}, folder={self.folder}, device={self.device})"


def check_lcm_lora(path: str | None) -> Path:
    """The LCM-LoRA path, or TeacherUnavailable naming teacher.lcmLora."""
    if not path:
        raise TeacherUnavailable("teacher.lcmLora: teacher.scheduler lcm needs the path of an LCM-LoRA")
    p = Path(path).expanduser()
    weights = [p] if p.is_file() else list(p.glob("*.safetensors")) if p.is_dir() else []
    if not weights:
        raise TeacherUnavailable(
            f"teacher.lcmLora: {p} is not an LCM-LoRA (a .safetensors file, or a folder holding one, "
            "such as pytorch_lora_weights.safetensors)"
        )
    return p
