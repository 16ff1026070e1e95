"""What a base generator is: resolution, width, text encoder, concepts, objective.

A concept adapter only makes sense on the base it was trained for, with the text
embeddings that base was trained on. The base records its identity in the safetensors
metadata (`text_encoder`, `text_encoder_sha256`, `resolution`, `width`, `concepts`,
`objective`), and `check_base` refuses, in one line, a base whose resolution or text
encoder differs from the run's. Bases written before these keys existed are checked on
what they do record (resolution, and the embedding size through the config).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trainers.text.base import TextEncoder

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def encoder_sha256(encoder: TextEncoder) -> str | None:
    """sha256 of the encoder's weights file, when it loads from a folder that holds one."""
    folder = getattr(encoder, "folder", None) or getattr(encoder, "path", None)
    if folder is None:
        return None
    for root in (Path(folder), Path(folder) / "text_encoder"):
        for name in WEIGHT_FILES:
            if (root / name).is_file():
                h = hashlib.sha256()
                with open(root / name, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                return h.hexdigest()
    return None


def base_identity(
    encoder: TextEncoder, resolution: int, width: int, concepts: list[str], objective: dict | None = None
) -> dict[str, str]:
    """Metadata entries (strings, as safetensors wants) that say what a base is."""
    meta = {
        "text_encoder": encoder.name,
        "text_dim": str(encoder.dim),
        "resolution": str(resolution),
        "width": str(width),
        "concepts": json.dumps(concepts),
    }
    digest = encoder_sha256(encoder)
    if digest:
        meta["text_encoder_sha256"] = digest
    if objective is not None:
        meta["objective"] = json.dumps(objective, sort_keys=True)
    return meta


def check_resolution(meta: dict[str, str], path: Path | str, resolution: int) -> None:
    """The part of `check_base` that needs no text encoder: run it first to refuse before one loads."""
    trained = meta.get("resolution")
    if trained is not None and int(trained) != resolution:
        raise ValueError(
            f"base: {path} was trained at {trained} px but training.resolution is {resolution} — "
            f"set training.resolution: {trained} or give a base trained at {resolution} px"
        )


def check_base(meta: dict[str, str], path: Path | str, resolution: int, encoder: TextEncoder) -> None:
    """Raise ValueError (one line) when the base was trained for another resolution or text encoder
    (its name, its embedding size, or its weights)."""
    check_resolution(meta, path, resolution)
    name = meta.get("text_encoder")
    if name is not None and name != encoder.name:
        raise ValueError(
            f"base: {path} was trained with the text encoder {name!r} but {encoder.name!r} is installed — "
            "install that encoder or give a base trained with this one"
        )
    dim = json.loads(meta.get("config", "{}")).get("text_dim")
    if dim is not None and int(dim) != encoder.dim:
        raise ValueError(
            f"base: {path} takes {dim}-dim text embeddings but the installed encoder gives {encoder.dim} — "
            "give a base trained with this encoder"
        )
    want = meta.get("text_encoder_sha256")
    have = encoder_sha256(encoder) if want else None
    if want and have and want != have:
        raise ValueError(
            f"base: {path} was trained with other {name or 'text encoder'} weights "
            f"(sha256 {want[:12]}…, installed {have[:12]}…) — reinstall the encoder it was trained with"
        )
