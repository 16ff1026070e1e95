"""The concept's text embedding, stored in the adapter folder.

`e2gan apply` (and any runtime) then needs no text encoder: the embedding the adapter was
trained with is the one it runs with, even where another encoder version is installed.
Safetensors only, with the encoder's id and the prompt in the metadata.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

TEXT_EMBEDDING_NAME = "text_embedding.safetensors"


def save_text_embedding(folder: Path, embedding: torch.Tensor, encoder: str, prompt: str) -> Path:
    path = Path(folder) / TEXT_EMBEDDING_NAME
    tensor = embedding.detach().to("cpu", torch.float32).reshape(1, -1).contiguous()
    save_file({"text": tensor}, str(path), metadata={"encoder": encoder, "prompt": prompt})
    return path


def load_text_embedding(folder: Path, dim: int) -> torch.Tensor | None:
    """[1, dim] float32, or None for an adapter published before embeddings were stored."""
    path = Path(folder) / TEXT_EMBEDDING_NAME
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt"):
            pass
        tensor = load_file(str(path)).get("text")
    except Exception as exc:  # a truncated or foreign file: one clear line, never a traceback
        raise ValueError(f"{path}: not a text embedding in safetensors ({type(exc).__name__})") from exc
    if tensor is None or tensor.ndim != 2 or tensor.shape != (1, dim):
        raise ValueError(f"{path}: expected a [1, {dim}] 'text' tensor for this base")
    return tensor.float()
