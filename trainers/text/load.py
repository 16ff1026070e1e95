"""load_text_encoder: a name or a folder -> a TextEncoder."""

from __future__ import annotations

import json
from pathlib import Path

from trainers.text.base import TextEncoder
from trainers.text.clip import CLIPTextEncoder
from trainers.text.minilm import MiniLMEncoder

DEFAULT_NAMES = frozenset({"minilm", "all-minilm-l6-v2", "default"})
CLIP_MODEL_TYPES = frozenset({"clip", "clip_text_model"})


def load_text_encoder(kind_or_path: str | Path | None = None, device: str = "cpu") -> TextEncoder:
    """None / 'minilm' -> the bundled MiniLM; 'clip:<folder>' or a CLIP folder -> CLIP;
    any other folder -> a mean-pooled sentence encoder (MiniLM-style) from it."""
    if kind_or_path is None or str(kind_or_path).lower() in DEFAULT_NAMES:
        return MiniLMEncoder(device=device)
    text = str(kind_or_path)
    if text.startswith("clip:"):
        return CLIPTextEncoder(text.removeprefix("clip:"), device=device)
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"unknown text encoder {text!r}: use 'minilm' (default), 'clip:<folder>' or a local model folder"
        )
    if (path / "text_encoder").is_dir():
        return CLIPTextEncoder(path, device=device)
    config = path / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    if model_type in CLIP_MODEL_TYPES:
        return CLIPTextEncoder(path, device=device)
    return MiniLMEncoder(path, device=device)
