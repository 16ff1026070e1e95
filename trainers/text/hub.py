"""Offline-by-default model loading, and the tokenizer guard.

huggingface_hub reads HF_HUB_OFFLINE when it is first imported, and without it a hub id
retries for minutes before failing. Every module here that loads weights calls
prepare_offline() before importing transformers or diffusers; a user opts into the
network with E2GAN_ALLOW_HUB=1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ALLOW_HUB_ENV = "E2GAN_ALLOW_HUB"

# A real CLIP tokenizer has 49 408 tokens and a BERT one 30 522; transformers 5 builds a
# 2-token tokenizer, silently, when the vocabulary files are missing.
MIN_VOCAB = 1000


class TokenizerFilesMissing(RuntimeError):
    """A tokenizer loaded without its vocabulary: its files are missing."""


def hub_allowed() -> bool:
    return os.environ.get(ALLOW_HUB_ENV, "").strip().lower() in {"1", "true", "yes"}


def prepare_offline() -> None:
    """Force offline mode unless the user allowed the hub; call before loading models."""
    if hub_allowed():
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        # Imported before us: its module-level flag is what the download code reads.
        constants.HF_HUB_OFFLINE = True


def check_tokenizer(tokenizer: Any, folder: str | Path) -> None:
    """Fail clearly when a tokenizer came back tiny (its vocabulary files were missing)."""
    size = len(tokenizer)
    if size < MIN_VOCAB:
        raise TokenizerFilesMissing(
            f"tokenizer files missing in {folder}: the tokenizer loaded with only {size} tokens "
            "(expected vocab.json and merges.txt for CLIP, or tokenizer.json / vocab.txt)"
        )
