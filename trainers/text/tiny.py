"""Tiny CLIP text parts built in code, offline: for tests and Ray workers (not test files).

The tokenizer is a real byte-level CLIP BPE with 1 190 tokens (bytes, end-of-word bytes,
all two-letter end-of-word merges, the two specials): big enough to pass the tokenizer
guard, and saved with vocab.json and merges.txt like a real checkpoint.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from trainers.text.hub import prepare_offline


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's byte -> printable character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tiny_clip_vocab() -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of the tiny BPE."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges = [f"{a} {b}</w>" for a in string.ascii_lowercase for b in string.ascii_lowercase]
    tokens += [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def build_tiny_clip_tokenizer(model_max_length: int = 77) -> Any:
    """A CLIPTokenizer built in code (transformers 5 takes vocab and merges directly)."""
    prepare_offline()
    from transformers import CLIPTokenizer

    vocab, merges = tiny_clip_vocab()
    pairs = [tuple(m.split(" ")) for m in merges]  # the BPE model takes (left, right) pairs
    return CLIPTokenizer(vocab=vocab, merges=pairs, model_max_length=model_max_length)


def save_tiny_clip_tokenizer(folder: str | Path) -> Any:
    """Save the tiny tokenizer with vocab.json and merges.txt, as real checkpoints ship."""
    import json

    folder = Path(folder)
    tokenizer = build_tiny_clip_tokenizer()
    tokenizer.save_pretrained(folder)
    vocab, merges = tiny_clip_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return tokenizer


def tiny_clip_text_config(vocab_size: int, hidden_size: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=hidden_size,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=hidden_size,
        vocab_size=vocab_size,
        max_position_embeddings=77,
    )


def build_tiny_clip_text(folder: str | Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """A random tiny CLIP text model + tokenizer saved to folder (text_encoder/, tokenizer/)."""
    prepare_offline()
    import torch
    from transformers import CLIPTextModel

    folder = Path(folder)
    tokenizer = save_tiny_clip_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    model = CLIPTextModel(tiny_clip_text_config(len(tokenizer), hidden_size)).eval()
    model.save_pretrained(folder / "text_encoder")
    return folder
