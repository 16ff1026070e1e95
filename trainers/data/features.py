"""Image features for data selection: any callable, a pixel fallback, or CLIP.

A features function takes uint8 images [N, H, W, 3] and returns float32 [N, D]. The
training code passes the base generator's bottleneck features; CLIP image features
(from a local folder) are the alternative the spec offers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.text.hub import prepare_offline

FeaturesFn = Callable[[np.ndarray], torch.Tensor]


def compute_features(images: np.ndarray, features_fn: FeaturesFn, batch_size: int = 64) -> torch.Tensor:
    """features_fn over images in batches: float32 [N, D] on the CPU."""
    rows = [
        torch.as_tensor(features_fn(images[i : i + batch_size])).detach().to("cpu", torch.float32).flatten(1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(rows) if rows else torch.empty(0, 0)


def pixel_features(images: np.ndarray, grid: int = 8) -> torch.Tensor:
    """Colour layout: each image averaged down to grid x grid x 3 (a cheap fallback)."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float() / 255.0
    return torch.nn.functional.adaptive_avg_pool2d(x, grid).flatten(1)


class CLIPImageFeatures:
    """CLIP image embeddings (projected, L2-normalised) from a local model folder."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        prepare_offline()
        from transformers import CLIPVisionModelWithProjection

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLIP model in {self.path}: expected config.json, model weights and "
                "preprocessor_config.json (a CLIPVisionModelWithProjection saved with save_pretrained)"
            )
        self.device = device
        self.model = (
            CLIPVisionModelWithProjection.from_pretrained(self.path, local_files_only=True).eval().to(device)
        )
        self.processor = self._processor()

    def _processor(self) -> Any:
        # transformers 5's CLIPImageProcessor wants torchvision; the PIL one is the same maths.
        try:
            from transformers import CLIPImageProcessorPil as Processor
        except ImportError:
            from transformers import CLIPImageProcessor as Processor
        if (self.path / "preprocessor_config.json").is_file():
            return Processor.from_pretrained(self.path, local_files_only=True)
        size = self.model.config.image_size
        return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        inputs = self.processor(images=list(images), return_tensors="pt")
        with torch.inference_mode():
            embeds = self.model(pixel_values=inputs["pixel_values"].to(self.device)).image_embeds
        return torch.nn.functional.normalize(embeds.float(), dim=-1).cpu()


def clip_image_features(path: str | Path, device: str = "cpu") -> CLIPImageFeatures:
    """A features function over CLIP image embeddings from a local folder."""
    return CLIPImageFeatures(path, device=device)
