"""The E2GAN / pix2pix objective: λ·L1 + a conditional PatchGAN (LSGAN or hinge), and
optionally a perceptual loss; plus the device rules every loop follows.

bf16 autocast and channels_last on CUDA, plain fp32 on CPU: one place decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainers.models.discriminator import PatchDiscriminator, layers_for


@dataclass
class Objective:
    """What the generator is trained against. `adversarial_weight=0` means no discriminator."""

    l1_weight: float = 100.0
    adversarial_weight: float = 1.0
    gan_loss: str = "lsgan"  # or "hinge"
    discriminator_lr: float = 2e-4
    ndf: int = 64
    ema_decay: float = 0.0
    perceptual_weights: str | None = None
    perceptual_weight: float = 1.0
    lr_decay_from: float = 0.5  # LR constant, then linear to 0 over the rest (pix2pix)

    @classmethod
    def l1_only(cls) -> Objective:
        return cls(l1_weight=1.0, adversarial_weight=0.0, lr_decay_from=1.0)

    @classmethod
    def from_training(cls, training, ndf: int = 64) -> Objective:
        """From a TrainingSpec; `ndf` is the discriminator's width (the pipelines pass the
        generator's width: 64 for the full-size student, as pix2pix; 32 for the built-in base)."""
        return cls(
            ndf=ndf,
            l1_weight=training.l1_weight,
            adversarial_weight=training.adversarial_weight,
            gan_loss=training.gan_loss,
            discriminator_lr=training.discriminator_learning_rate,
            ema_decay=training.ema_decay,
            perceptual_weights=training.perceptual_weights,
            perceptual_weight=training.perceptual_weight,
        )

    @property
    def adversarial(self) -> bool:
        return self.adversarial_weight > 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self, disc: PatchDiscriminator | None) -> dict:
        """The manifest's `objective`: weights and the discriminator's shape."""
        out = {"l1_weight": self.l1_weight, "adversarial_weight": self.adversarial_weight,
               "gan_loss": self.gan_loss if self.adversarial else None, "ema_decay": self.ema_decay,
               "discriminator_lr": self.discriminator_lr, "lr_decay_from": self.lr_decay_from,
               "perceptual_weight": self.perceptual_weight if self.perceptual_weights else 0.0}
        out["discriminator"] = disc.describe() if disc is not None else None
        return out


def new_discriminator(objective: Objective, resolution: int) -> PatchDiscriminator | None:
    if not objective.adversarial:
        return None
    return PatchDiscriminator(ndf=objective.ndf, n_layers=layers_for(resolution))


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))


def generator_gan_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "hinge":
        return -fake.mean()
    return F.mse_loss(fake, torch.ones_like(fake))


def default_device() -> torch.device:
    """This process's accelerator: Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def trial_device() -> torch.device:
    """Inside a Tune trial: its assigned (possibly fractional) GPU, else the CPU."""
    import ray

    return torch.device("cuda") if torch.cuda.is_available() and ray.get_gpu_ids() else torch.device("cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op (fp32) on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def place(module: nn.Module, device: torch.device) -> nn.Module:
    """Move to `device`; channels_last on CUDA (faster convolutions with bf16)."""
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if device.type == "cuda" else module


def place_batch(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" and x.dim() == 4 else x
