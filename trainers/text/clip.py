"""CLIPTextEncoder: a CLIP text tower from a local folder (pooled, L2-normalised)."""

from __future__ import annotations

from pathlib import Path

import torch

from trainers.text.base import CachedTextEncoder
from trainers.text.hub import check_tokenizer, prepare_offline


def clip_text_folders(path: Path) -> tuple[Path, Path]:
    """(model folder, tokenizer folder): a diffusers pipeline keeps them in subfolders."""
    if (path / "text_encoder").is_dir():
        return path / "text_encoder", path / "tokenizer"
    return path, path


class CLIPTextEncoder(CachedTextEncoder):
    """The pooled output (end-of-text token) of a CLIP text model, L2-normalised like MiniLM.

    path is a CLIP model folder (CLIPModel or CLIPTextModel with its tokenizer) or a
    diffusers pipeline folder (text_encoder/ and tokenizer/).
    """

    def __init__(self, path: str | Path, device: str = "cpu", cache_size: int = 1024) -> None:
        super().__init__(cache_size)
        prepare_offline()
        from transformers import CLIPTextModel, CLIPTokenizer

        self.path = Path(path)
        model_dir, tokenizer_dir = clip_text_folders(self.path)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no CLIP text model in {model_dir} (config.json missing)")
        self.device = device
        self.tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        check_tokenizer(self.tokenizer, tokenizer_dir)
        self.model = CLIPTextModel.from_pretrained(model_dir, local_files_only=True).eval().to(device)
        self.dim = int(self.model.config.hidden_size)
        self.name = f"clip:{self.path.name}"

    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        max_length = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        batch = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            pooled = self.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).pooler_output
        return torch.nn.functional.normalize(pooled.float(), dim=-1)
