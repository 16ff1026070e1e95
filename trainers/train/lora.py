"""Crucial-layer LoRA with peft: per-group ranks, save/load as a PEFT adapter folder."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from trainers.models.crucial import CRUCIAL_LAYERS


def lora_config(ranks: dict[str, int], groups: dict[str, str] = CRUCIAL_LAYERS) -> LoraConfig:
    """One LoraConfig whose rank_pattern gives every group its own rank (alpha = rank)."""
    unknown = set(ranks) - set(groups)
    if unknown:
        raise ValueError(f"unknown layer groups {sorted(unknown)}; known: {sorted(groups)}")
    active = {g: r for g, r in ranks.items() if r > 0}
    if not active:
        raise ValueError("every rank is 0: LoRA would train nothing")
    patterns = {groups[g]: r for g, r in active.items()}
    first = next(iter(active.values()))
    return LoraConfig(
        r=first,
        lora_alpha=first,
        target_modules="|".join(f"(?:{p})" for p in patterns),
        rank_pattern=patterns,
        alpha_pattern=dict(patterns),
        lora_dropout=0.0,
        init_lora_weights=True,
    )


def attach_lora(base: nn.Module, ranks: dict[str, int], groups: dict[str, str] = CRUCIAL_LAYERS) -> PeftModel:
    """A peft model over a private copy of `base` (the base stays untouched for other trials)."""
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(False)
    return get_peft_model(model, lora_config(ranks, groups))


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_adapter(model: PeftModel, folder: Path, dtype: str = "fp32") -> Path:
    """adapter_config.json + adapter_model.safetensors (peft's format, never pickle).

    `dtype="fp16"` stores the LoRA matrices in half precision (half the bytes); peft
    casts them back to the model's fp32 when the adapter is loaded.
    """
    folder = Path(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    if dtype == "fp16":
        cast_adapter(folder / "adapter_model.safetensors", torch.float16)
    return folder


def cast_adapter(path: Path, dtype: torch.dtype) -> Path:
    """Rewrite a saved adapter's floating-point tensors in `dtype`, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(path)).items()}
    save_file(state, str(path), metadata=meta)
    return path


def load_adapter(base: nn.Module, folder: Path) -> PeftModel:
    """Load a saved adapter onto a fresh copy of the base generator."""
    folder = Path(folder)
    if not (folder / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: no adapter_model.safetensors (weights load from safetensors only)")
    return PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()


def ranks_of(model: PeftModel, groups: dict[str, str] = CRUCIAL_LAYERS) -> dict[str, int]:
    """The ranks actually attached, per group (read back from the model, not the request)."""
    import re

    found: dict[str, int] = {}
    for name, module in model.named_modules():
        r = getattr(module, "r", None)
        if not isinstance(r, dict) or "default" not in r:
            continue
        inner = name.split("base_model.model.", 1)[-1]
        for group, pattern in groups.items():
            if re.fullmatch(pattern, inner):
                found[group] = r["default"]
    return found
