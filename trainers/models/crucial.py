"""The crucial layers: where LoRA goes. Named here and nowhere else.

E2GAN attaches LoRA to the sampling stages and the transformer block, not the residual
blocks. Each group below is one searchable rank (five places, as in the paper).
`bench/layer_ablation.py` fine-tunes LoRA on each group alone and on the residual blocks
at matched parameter budgets. On our 64 px student it does not single the residual blocks
out (README, "Measured"), so this choice follows the paper and the rank search sizes each group.
"""

from __future__ import annotations

import re

from torch import nn

# group name → regex over E2GANGenerator module names (full match, as peft's rank_pattern).
CRUCIAL_LAYERS: dict[str, str] = {
    "down": r"(stem|down\.\d+)\.conv",
    "self_attn": r"transformer\.attn1\.(to_q|to_k|to_v|to_out)",
    "cross_attn": r"context|transformer\.attn2\.(to_q|to_k|to_v|to_out)",
    "mlp": r"transformer\.(ff_in|ff_out)",
    "up": r"(up\.\d+\.conv|head)",
}

# Not crucial (ablation reference only): the residual blocks.
RESIDUAL_LAYERS: dict[str, str] = {"res": r"res_(before|after)\.\d+\.conv[12]"}


def modules_in(model: nn.Module, groups: dict[str, str]) -> dict[str, list[str]]:
    """Module names of `model` that each group's pattern matches (Conv2d and Linear only)."""
    found: dict[str, list[str]] = {g: [] for g in groups}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        for group, pattern in groups.items():
            if re.fullmatch(pattern, name):
                found[group].append(name)
    return found
