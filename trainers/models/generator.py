"""The E2GAN student generator: small, text-conditioned, LoRA-friendly.

Layout (paper, project-page figure): down-sampling stem → 2 residual blocks → one more
down-sampling → a transformer block (self-attention, cross-attention to the concept's
text embedding, MLP) → up-sampling → 1 residual block → up-sampling → tanh.
Up-sampling is nearest Upsample + Conv2d, never ConvTranspose2d, because peft's LoRA
adapts Conv2d and Linear only; every crucial layer is a plain Conv2d or Linear so the
rank search can reach it (see `crucial.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the generator; stored in the weights file's metadata."""

    width: int = 32  # channels after the stem; doubles at each down-sampling (capped at 4×)
    text_dim: int = 384  # size of the concept embedding (MiniLM: 384, CLIP ViT-L: 768)
    context_tokens: int = 4  # the embedding is projected into this many cross-attention keys
    heads: int = 4
    res_blocks: int = 3  # 2 before the transformer, the rest after it (paper: 3 in total)
    downsamplings: int = 3  # resolution must be a multiple of 2**downsamplings

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class InstanceNorm(nn.GroupNorm):
    """Instance norm with affine weights, as one group per channel.

    The same function and the same state (weight, bias) as nn.InstanceNorm2d(affine=True),
    but it exports to ONNX without warnings: the legacy exporter flags every InstanceNorm2d
    without running stats as "set to train=True" in eval mode, and F.group_norm's Python
    batch-size check is a TracerWarning when traced; torch.group_norm is the same kernel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def _norm(channels: int) -> nn.Module:
    # Instance norm (pix2pix's choice) keeps batch size 1 and ONNX export simple.
    return InstanceNorm(channels)


class ConvNormAct(nn.Module):
    """Conv2d → InstanceNorm → ReLU; optionally preceded by a 2× nearest up-sampling."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.norm = _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = _norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = _norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(h))


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out Linear layers (each LoRA-targetable)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(context_dim, dim)
        self.to_v = nn.Linear(context_dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(n, -1, h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context)))
        return self.to_out(out.transpose(1, 2).reshape(n, t, d))


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text context, then an MLP (pre-norm)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, 4 * dim)
        self.ff_out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, c, hgt, wid = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        h = self.norm1(tokens)
        tokens = tokens + self.attn1(h, h)
        tokens = tokens + self.attn2(self.norm2(tokens), context)
        tokens = tokens + self.ff_out(F.gelu(self.ff_in(self.norm3(tokens))))
        return tokens.transpose(1, 2).reshape(n, c, hgt, wid)


class E2GANGenerator(nn.Module):
    """forward(image in [-1, 1] of shape [N, 3, H, W], text [N, text_dim]) → image in [-1, 1]."""

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        if cfg.downsamplings < 2:
            raise ValueError("downsamplings must be at least 2 (one before, one after the first res blocks)")
        widths = [min(cfg.width * 2**i, cfg.width * 4) for i in range(cfg.downsamplings + 1)]
        self.stem = ConvNormAct(3, widths[0], 7)
        # All but the last down-sampling come before the first residual blocks.
        self.down = nn.ModuleList(ConvNormAct(widths[i], widths[i + 1], 3, stride=2) for i in range(cfg.downsamplings))
        before = min(2, cfg.res_blocks)
        self.res_before = nn.Sequential(*(ResBlock(widths[-2]) for _ in range(before)))
        self.res_after = nn.Sequential(*(ResBlock(widths[-2]) for _ in range(cfg.res_blocks - before)))
        dim = widths[-1]
        self.context = nn.Linear(cfg.text_dim, cfg.context_tokens * dim)
        self.transformer = TransformerBlock(dim, cfg.heads)
        self.up = nn.ModuleList(
            ConvNormAct(widths[i + 1], widths[i], 3, upsample=True) for i in reversed(range(cfg.downsamplings))
        )
        self.head = nn.Conv2d(widths[0], 3, 7, padding=3)

    def text_context(self, text: torch.Tensor) -> torch.Tensor:
        n = text.shape[0]
        return self.context(text).reshape(n, self.config.context_tokens, -1)

    def encode(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The bottleneck after the transformer block, [N, C, H/2^d, W/2^d]."""
        x = self.stem(image)
        for i, down in enumerate(self.down):
            x = down(x)
            if i == len(self.down) - 2:
                x = self.res_before(x)
        return self.transformer(x, self.text_context(text))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = self.encode(image, text)
        for i, up in enumerate(self.up):
            x = up(x)
            if i == 0:
                x = self.res_after(x)
        return torch.tanh(self.head(x))

    @torch.no_grad()
    def bottleneck_features(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Spatially pooled bottleneck, [N, C]: the default features for data selection."""
        return self.encode(image, text).mean(dim=(2, 3))


class ConceptGenerator(nn.Module):
    """A generator with one concept's text embedding baked in: forward(image) → image (for export)."""

    def __init__(self, generator: nn.Module, text: torch.Tensor):
        super().__init__()
        self.generator = generator
        self.register_buffer("text", text.reshape(1, -1).clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.generator(image, self.text.expand(image.shape[0], -1))
