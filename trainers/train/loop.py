"""One training loop for every arm: λ·L1 to the teacher, a conditional PatchGAN, EMA, LR decay.

The base model, the LoRA fine-tune, the rank-search trials and the benchmark's
baselines all call `fit`, so their numbers differ only by what is trainable and the
objective they are given. Everything runs on one device (the model's, or `device`):
the batches, the discriminator, the perceptual network and the EMA copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from trainers.data.convert import to_tensor
from trainers.train.objective import (
    Objective,
    autocast,
    discriminator_loss,
    generator_gan_loss,
    new_discriminator,
    place,
    place_batch,
)


class Pairs(Protocol):
    """What `fit` samples from: a set of pairs that hands out float batches on a device."""

    def __len__(self) -> int: ...

    @property
    def resolution(self) -> int: ...

    def batch(self, index: torch.Tensor, device: torch.device) -> PairTensors: ...


@dataclass
class PairTensors:
    """Training pairs in [-1, 1] plus the text embedding of each pair's concept.

    A batch, or a small set held whole (tests, benchmarks); the pipelines keep their
    pairs as uint8 `PairArrays` and convert a batch at a time.
    """

    source: torch.Tensor  # [N, 3, H, W]
    target: torch.Tensor  # [N, 3, H, W]
    text: torch.Tensor  # [N, D]

    def __len__(self) -> int:
        return self.source.shape[0]

    @property
    def resolution(self) -> int:
        return self.source.shape[-1]

    def subset(self, index: torch.Tensor | list[int]) -> PairTensors:
        index = torch.as_tensor(index, dtype=torch.long, device=self.source.device)
        return PairTensors(self.source[index], self.target[index], self.text[index])

    def to(self, device: torch.device) -> PairTensors:
        return PairTensors(place_batch(self.source, device), place_batch(self.target, device), self.text.to(device))

    def batch(self, index: torch.Tensor, device: torch.device) -> PairTensors:
        return self.subset(index).to(device)


class Images(Protocol):
    """uint8 [N, H, W, 3]: a numpy array (maybe a read-only view of Ray's object store, or a
    memory map) or `ShardedImages`; `images[rows]` is a fresh array of those rows."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass
class PairArrays:
    """Pairs kept as uint8 images, converted to [-1, 1] floats a batch at a time on the device.

    `text` has one row per concept and `concept` gives each pair's row (None: row 0 for
    all). `rows` selects the pairs of source/target this set holds, so `subset` is a view:
    no pixel is copied until a batch gathers its own rows. Pickled (Tune's
    `with_parameters`, Ray Train's config), numpy arrays travel once through Ray's object
    store and come back as zero-copy read-only views; shards travel as their paths.
    """

    source: Images
    target: Images
    text: torch.Tensor  # [K, D]
    concept: np.ndarray | None = None  # [len(source)] int: each pair's row of text
    rows: np.ndarray | None = None  # [n] int: the pairs of source/target in this set

    def __len__(self) -> int:
        return len(self.source) if self.rows is None else len(self.rows)

    @property
    def resolution(self) -> int:
        return self.source.shape[2]

    def _rows(self, index: np.ndarray) -> np.ndarray:
        return index if self.rows is None else self.rows[index]

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> PairArrays:
        """The pairs at index, as a view (no pixels copied)."""
        rows = self._rows(np.asarray(index, dtype=np.int64).reshape(-1))
        return PairArrays(self.source, self.target, self.text, self.concept, rows)

    def take(self, index: np.ndarray | torch.Tensor | list[int]) -> PairArrays:
        """The pairs at index, as compact uint8 arrays of their own (to ship one split, not the whole set)."""
        rows = self._rows(np.asarray(index, dtype=np.int64).reshape(-1))
        concept = None if self.concept is None else np.asarray(self.concept)[rows]
        return PairArrays(self.source[rows], self.target[rows], self.text, concept)

    def batch(self, index: torch.Tensor, device: torch.device) -> PairTensors:
        rows = self._rows(np.asarray(index, dtype=np.int64).reshape(-1))
        concept = torch.zeros(len(rows), dtype=torch.long) if self.concept is None else torch.from_numpy(
            np.asarray(self.concept, dtype=np.int64)[rows])
        return PairTensors(
            place_batch(to_tensor(self.source[rows], device), device),
            place_batch(to_tensor(self.target[rows], device), device),
            self.text[concept].to(device),
        )


def batches(data: Pairs, device: torch.device, batch_size: int = 64) -> Iterator[PairTensors]:
    """The set in order, a float batch at a time (validation and test metrics)."""
    for start in range(0, len(data), batch_size):
        yield data.batch(torch.arange(start, min(start + batch_size, len(data))), device)


def call_generator(model: nn.Module, source: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
    """Text-conditioned students take (image, text); pix2pix takes the image alone."""
    return model(source) if text is None else model(source, text)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


@dataclass
class GanParts:
    """The discriminator (maybe DDP-wrapped) and its own optimizer."""

    disc: nn.Module
    optimizer: torch.optim.Optimizer

    @property
    def inner(self) -> nn.Module:
        return unwrap(self.disc)


def new_gan_parts(disc: nn.Module, lr: float) -> GanParts:
    return GanParts(disc, torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999)))


def new_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of the (unwrapped) generator's parameters, or None when decay is 0.

    The decay warms up as (1 + n) / (10 + n) up to `decay`, so a fine-tune of a few
    hundred steps publishes its trained weights, not an average dominated by the start.
    """
    if decay <= 0:
        return None

    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return averaged * d + current * (1 - d)

    return AveragedModel(unwrap(model), avg_fn=average, use_buffers=False)


def linear_decay(steps: int, decay_from: float) -> Callable[[int], float]:
    """pix2pix's schedule: constant, then linear to 0 from `decay_from * steps` on."""
    start = int(steps * decay_from)

    def factor(step: int) -> float:
        return 1.0 if step < start or steps <= start else max(0.0, (steps - step) / (steps - start))

    return factor


def _scheduler(optimizer: torch.optim.Optimizer, factor: Callable[[int], float], start_step: int) -> LambdaLR:
    for group in optimizer.param_groups:  # resumes at the right point of the schedule
        group.setdefault("initial_lr", group["lr"])
    return LambdaLR(optimizer, factor, last_epoch=start_step - 1)


@dataclass
class FitResult:
    steps: int
    seconds: float
    last_loss: float
    gan: GanParts | None = None
    ema: AveragedModel | None = None


def fit(
    model: nn.Module,
    data: Pairs,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    use_text: bool = True,
    objective: Objective | None = None,
    gan: GanParts | None = None,
    ema: AveragedModel | None = None,
    device: torch.device | None = None,
    max_seconds: float | None = None,
    start_step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int, float], bool | None] | None = None,
) -> FitResult:
    """Train `model`'s trainable parameters; `on_step(step, loss)` returning True stops early.

    Each step draws a random batch from `data` as floats on the device; `PairArrays`
    keep the set as uint8 and convert only that batch.

    Without `objective` it is plain L1 regression (tests, quick probes). With an
    adversarial objective and no `gan`, a fresh discriminator is made (scaled to the
    resolution); pass `gan` to continue one (base → concept, checkpoints, DDP).
    """
    objective = objective or Objective.l1_only()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    if objective.l1_weight <= 0 and not objective.adversarial and not objective.perceptual_weights:
        raise ValueError("the objective is empty: l1Weight, adversarialWeight and the perceptual loss are all 0")
    device = device or next(model.parameters()).device
    model = place(model, device)
    optimizer = optimizer or torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    factor = linear_decay(steps, objective.lr_decay_from)
    schedulers = [_scheduler(optimizer, factor, start_step)]
    if objective.adversarial and gan is None:
        gan = new_gan_parts(place(new_discriminator(objective, data.resolution), device), objective.discriminator_lr)
    if gan is not None:
        place(gan.disc, device)
        schedulers.append(_scheduler(gan.optimizer, factor, start_step))
    feature_net = None
    if objective.perceptual_weights:
        from trainers.train.perceptual import load_feature_net

        feature_net = place(load_feature_net(objective.perceptual_weights), device)
    gen = torch.Generator().manual_seed(seed + start_step)
    model.train()
    started = time.perf_counter()
    loss_value = float("nan")
    step = start_step
    while step < steps:
        batch = data.batch(torch.randint(len(data), (batch_size,), generator=gen), device)
        text = batch.text if use_text else None
        with autocast(device):
            fake = call_generator(model, batch.source, text)
        if gan is not None:  # discriminator step: real and fake pairs in one forward (one DDP pass)
            with autocast(device):
                scores = gan.disc(torch.cat([batch.source, batch.source]), torch.cat([batch.target, fake.detach()]))
            real_score, fake_score = scores.chunk(2)
            d_loss = discriminator_loss(objective.gan_loss, real_score, fake_score)
            gan.optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            gan.optimizer.step()
        loss = objective.l1_weight * F.l1_loss(fake.float(), batch.target)
        if feature_net is not None:
            from trainers.train.perceptual import perceptual_loss

            with autocast(device):
                loss = loss + objective.perceptual_weight * perceptual_loss(feature_net, fake, batch.target).float()
        if gan is not None:
            # The generator's step reads the bare discriminator, frozen, outside DDP: no
            # gradient for it and no second DDP forward before its backward.
            inner = gan.inner
            inner.requires_grad_(False)
            with autocast(device):
                loss = loss + objective.adversarial_weight * generator_gan_loss(objective.gan_loss, inner(batch.source, fake))
            inner.requires_grad_(True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(unwrap(model))
        step += 1
        loss_value = float(loss.detach())
        if on_step is not None and on_step(step, loss_value):
            break
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
    model.eval()
    return FitResult(steps=step, seconds=time.perf_counter() - started, last_loss=loss_value, gan=gan, ema=ema)
