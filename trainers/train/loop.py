"""One training loop for every arm: L1 to the teacher, plus an optional PatchGAN loss.

The base model, the LoRA fine-tune, the rank-search trials and the benchmark's
baselines all call `fit`, so their numbers differ only by what is trainable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainers.models.discriminator import PatchDiscriminator


@dataclass
class PairTensors:
    """Training pairs in [-1, 1] plus the text embedding of each pair's concept."""

    source: torch.Tensor  # [N, 3, H, W]
    target: torch.Tensor  # [N, 3, H, W]
    text: torch.Tensor  # [N, D]

    def __len__(self) -> int:
        return self.source.shape[0]

    def subset(self, index: torch.Tensor | list[int]) -> PairTensors:
        index = torch.as_tensor(index, dtype=torch.long)
        return PairTensors(self.source[index], self.target[index], self.text[index])


def call_generator(model: nn.Module, source: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
    """Text-conditioned students take (image, text); pix2pix takes the image alone."""
    return model(source) if text is None else model(source, text)


@dataclass
class FitResult:
    steps: int
    seconds: float
    last_loss: float


def fit(
    model: nn.Module,
    data: PairTensors,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    use_text: bool = True,
    adversarial_weight: float = 0.0,
    max_seconds: float | None = None,
    start_step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int, float], bool | None] | None = None,
) -> FitResult:
    """Train `model`'s trainable parameters; `on_step(step, loss)` returning True stops early."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = optimizer or torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    disc = disc_opt = None
    if adversarial_weight > 0:
        disc = PatchDiscriminator(ndf=32, n_layers=2)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed + start_step)
    model.train()
    started = time.perf_counter()
    loss_value = float("nan")
    step = start_step
    while step < steps:
        batch = data.subset(torch.randint(len(data), (batch_size,), generator=gen))
        text = batch.text if use_text else None
        fake = call_generator(model, batch.source, text)
        loss = F.l1_loss(fake, batch.target)
        if disc is not None and disc_opt is not None:
            score = disc(batch.source, fake)  # LSGAN: the generator wants patches judged real
            loss = loss + adversarial_weight * F.mse_loss(score, torch.ones_like(score))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if disc is not None and disc_opt is not None:
            real_score = disc(batch.source, batch.target)
            fake_score = disc(batch.source, fake.detach())
            d_loss = 0.5 * (F.mse_loss(real_score, torch.ones_like(real_score)) + F.mse_loss(fake_score, torch.zeros_like(fake_score)))
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        step += 1
        loss_value = float(loss.detach())
        if on_step is not None and on_step(step, loss_value):
            break
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
    model.eval()
    return FitResult(steps=step, seconds=time.perf_counter() - started, last_loss=loss_value)
