"""Conditional PatchGAN discriminator (pix2pix): judges (source, output) pairs patch by patch.

pix2pix's 70×70 PatchGAN is `n_layers=3` at 256 px; at other resolutions the depth is
chosen so the receptive field covers the same fraction of the image (`layers_for`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

KERNEL = 4
# pix2pix: a 70-pixel receptive field on 256-pixel images.
REFERENCE_FIELD, REFERENCE_RESOLUTION = 70, 256


def receptive_field(n_layers: int) -> int:
    """Receptive field in pixels of a PatchDiscriminator with `n_layers` (3 → 70)."""
    strides = [2] + [2] * (n_layers - 1) + [1, 1]
    field, jump = 1, 1
    for stride in strides:
        field += (KERNEL - 1) * jump
        jump *= stride
    return field


def layers_for(resolution: int) -> int:
    """The depth whose receptive field is closest to 70/256 of the image (log scale)."""
    target = REFERENCE_FIELD * resolution / REFERENCE_RESOLUTION
    return min(range(1, 6), key=lambda n: abs(math.log(receptive_field(n) / target)))


class PatchDiscriminator(nn.Module):
    """70×70 PatchGAN at n_layers=3; input is source and target concatenated (6 channels)."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.ndf, self.n_layers = ndf, n_layers
        layers: list[nn.Module] = [nn.Conv2d(6, ndf, KERNEL, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for i in range(1, n_layers + 1):
            prev, mult = mult, min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, KERNEL, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult, affine=True),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, KERNEL, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def describe(self) -> dict[str, int | str]:
        return {"kind": "conditional PatchGAN", "ndf": self.ndf, "n_layers": self.n_layers,
                "receptive_field": self.receptive_field}

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, target], dim=1))
