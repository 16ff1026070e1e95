"""Validation scoring and the plateau rule that ends a concept fine-tune early.

The fine-tune checks the generator (its EMA when it keeps one) on the validation split
every `validationEvery` steps. When `plateauPatience` checks in a row gain less than
`MIN_GAIN_DB` over the best so far, it stops and publishes the best check, not the
last. So a small kept set (minimal data) costs fewer steps, not only fewer teacher
calls. The test split plays no part: it stays the only source of published figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from trainers.evaluate.metrics import psnr_per_image
from trainers.train.loop import Pairs, batches, call_generator

# A smaller gain is not progress worth 4 more checks: near the plateau, neighbouring EMA
# checks of the embedded default moved by 0.003-0.04 dB. The same threshold decides when
# pix2pix has converged in bench/time_to_quality.py.
MIN_GAIN_DB = 0.05


def validation_scores(model: torch.nn.Module, validation: Pairs, batch_size: int = 64) -> torch.Tensor:
    """Per-image PSNR on the validation split (fp32), a batch at a time on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = torch.cat([psnr_per_image(call_generator(model, b.source, b.text), b.target).cpu()
                            for b in batches(validation, device, batch_size)])
    model.train(was_training)
    return scores


@dataclass
class Plateau:
    """The best validation PSNR so far, and how many checks in a row have not moved it by
    `min_gain`. A higher check is always the new best (its weights are what is published),
    but only a gain of `min_gain` over the last significant check resets the patience."""

    patience: int  # checks without a gain before stopping; 0 never stops
    min_gain: float = MIN_GAIN_DB
    best: float = -math.inf
    best_step: int = 0
    anchor: float = -math.inf  # the last check that gained min_gain
    since: int = 0
    checks: list[list[float]] = field(default_factory=list)  # [step, psnr] of every check

    def update(self, step: int, psnr: float) -> bool:
        """Record a check; True when it is the new best (the caller keeps those weights)."""
        self.checks.append([step, round(psnr, 4)])
        if psnr >= self.anchor + self.min_gain:
            self.anchor, self.since = psnr, 0
        else:
            self.since += 1
        if psnr > self.best:
            self.best, self.best_step = psnr, step
            return True
        return False

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.since >= self.patience

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plateau:
        """Back from a checkpoint's record (which also holds how the run ended)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
