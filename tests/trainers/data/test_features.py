from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.data import clip_image_features, compute_features, pixel_features, select_nearest_centres
from trainers.data.tiny import build_tiny_clip_vision
from trainers.sources import synthetic_scenes


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip_vision(tmp_path_factory.mktemp("clip-vision"), image_size=32)


def test_clip_image_features(clip_folder: Path) -> None:
    fn = clip_image_features(clip_folder)
    images = synthetic_scenes(5, 48, seed=0)  # resized and cropped by the processor
    feats = fn(images)
    assert feats.shape == (5, fn.dim) == (5, 16) and feats.dtype == torch.float32
    assert torch.allclose(feats.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(fn(images[:2]), feats[:2], atol=1e-5)  # per-image, batch-independent
    assert not torch.allclose(feats[0], feats[1])


def test_clip_features_drive_selection(clip_folder: Path) -> None:
    images = synthetic_scenes(12, 32, seed=1)
    feats = compute_features(images, clip_image_features(clip_folder), batch_size=5)
    assert feats.shape == (12, 16)
    assert len(select_nearest_centres(feats, 0.25, seed=0)) == 3


def test_clip_without_processor_config(clip_folder: Path, tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((clip_folder / name).read_bytes())
    assert clip_image_features(tmp_path)(synthetic_scenes(2, 32, seed=0)).shape == (2, 16)


def test_clip_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CLIP model"):
        clip_image_features(tmp_path)


def test_pixel_features() -> None:
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[1] = 255
    feats = pixel_features(images)
    assert feats.shape == (2, 8 * 8 * 3) and float(feats[0].max()) == 0.0 and float(feats[1].min()) == 1.0


def test_compute_features_empty() -> None:
    assert compute_features(np.zeros((0, 8, 8, 3), np.uint8), pixel_features).numel() == 0
