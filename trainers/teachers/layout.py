"""What a diffusers Stable Diffusion pipeline folder must hold, checked before loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trainers.teachers.base import TeacherUnavailable

EXPECTED_LAYOUT = (
    "model_index.json, unet/ (config.json + weights), vae/ (config.json + weights), "
    "text_encoder/ (config.json + weights), tokenizer/ (vocab.json, merges.txt), "
    "scheduler/ (scheduler_config.json) — as written by pipeline.save_pretrained(folder)"
)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
# UNet input channels: latents (4) plus, for InstructPix2Pix, the encoded source image (4).
UNET_IN_CHANNELS = {"instruct-pix2pix": 8, "sdedit": 4}


def _has_weights(folder: Path) -> bool:
    return any(p.name.endswith(WEIGHT_SUFFIXES) for p in folder.iterdir())


def missing_parts(folder: Path) -> list[str]:
    """The parts of the expected layout that folder lacks (empty when complete)."""
    if not folder.is_dir():
        return [f"the folder itself ({folder} does not exist)"]
    missing = [] if (folder / "model_index.json").is_file() else ["model_index.json"]
    for part, config in (("unet", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json")):
        sub = folder / part
        if not sub.is_dir():
            missing.append(f"{part}/")
        elif not (sub / config).is_file() or not _has_weights(sub):
            missing.append(f"{part}/ ({config} and weights)")
    if not (folder / "tokenizer").is_dir():
        missing.append("tokenizer/")
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        missing.append("scheduler/scheduler_config.json")
    return missing


def check_layout(folder: Path, kind: str) -> None:
    """Raise TeacherUnavailable naming what is missing and the layout expected."""
    missing = missing_parts(folder)
    if missing:
        raise TeacherUnavailable(
            f"teacher model folder {folder} is missing or incomplete (missing: {', '.join(missing)}); "
            f"a {kind} teacher needs a diffusers pipeline folder with {EXPECTED_LAYOUT}"
        )
    channels = json.loads((folder / "unet" / "config.json").read_text()).get("in_channels")
    want = UNET_IN_CHANNELS[kind]
    if channels != want:
        other = (
            next(k for k, c in UNET_IN_CHANNELS.items() if c == channels)
            if channels in UNET_IN_CHANNELS.values()
            else None
        )
        hint = f"; it looks like a {other} checkpoint: set teacher.kind to {other}" if other else ""
        raise TeacherUnavailable(
            f"teacher model folder {folder} has a UNet with {channels} input channels, a {kind} teacher "
            f"needs {want}{hint}"
        )


def folder_digest(folder: Path, sample_bytes: int = 1 << 20) -> str:
    """A short content digest of a pipeline folder, independent of where it lives.

    Config files are hashed whole; weight files by size plus their first and last MiB,
    which tells fine-tunes apart without reading gigabytes.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        h.update(rel.encode() + b"\0")
        size = path.stat().st_size
        h.update(str(size).encode() + b"\0")
        with path.open("rb") as f:
            if size <= 2 * sample_bytes:
                h.update(f.read())
            else:
                h.update(f.read(sample_bytes))
                f.seek(size - sample_bytes)
                h.update(f.read(sample_bytes))
    return h.hexdigest()[:16]
