"""An optional perceptual loss from a VGG-style feature network whose weights come by path.

Nothing is downloaded: the network is rebuilt from the safetensors file itself, in
torchvision's `vgg*.features` layout (`features.N.weight`): 3×3 convolutions with a
ReLU after each, and a 2×2 max-pool wherever the layer index skips one (VGG16's
pools sit at 4, 9, 16, 23, 30). A converted real VGG16 and a tiny random test network
load the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_KEY = re.compile(r"^features\.(\d+)\.(weight|bias)$")


class PerceptualWeightsError(ValueError):
    """The perceptual-weights path is missing or is not a usable safetensors file."""


class FeatureNet(nn.Module):
    """forward(image in [-1, 1]) → the activations after every ReLU before a pool."""

    def __init__(self, convs: list[nn.Conv2d], pool_after: set[int]):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.pool_after = pool_after
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in self.pool_after:
                taps.append(x)
                x = F.max_pool2d(x, 2)
        taps.append(x)
        return taps


def load_feature_net(path: str | Path) -> FeatureNet:
    """Rebuild and freeze the network saved at `path`; PerceptualWeightsError names the problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise PerceptualWeightsError(f"training.perceptualWeights: {path} is not a .safetensors file; convert the weights to safetensors")
    if not path.is_file():
        raise PerceptualWeightsError(f"training.perceptualWeights: {path} does not exist; give the path of a safetensors feature network")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise PerceptualWeightsError(f"training.perceptualWeights: {path} is not readable safetensors ({exc})") from exc
    layers = sorted({int(m.group(1)) for k in state if (m := _KEY.match(k))})
    if not layers or state[f"features.{layers[0]}.weight"].shape[1] != 3:
        raise PerceptualWeightsError(f"training.perceptualWeights: {path} holds no features.N.weight convolutions over RGB")
    convs = []
    for n in layers:
        w = state[f"features.{n}.weight"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(state.get(f"features.{n}.bias", torch.zeros(w.shape[0])))
        convs.append(conv)
    # conv, relu (+2) → next conv; conv, relu, pool (+3) → next conv.
    pool_after = {i for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)) if b - a > 2}
    net = FeatureNet(convs, pool_after).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def perceptual_loss(net: FeatureNet, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the feature maps of output and target."""
    with torch.no_grad():
        wanted = net(target)
    got = net(fake)
    return sum(F.l1_loss(a, b) for a, b in zip(got, wanted, strict=True)) / len(got)
