"""A tiny random CLIP vision model saved to a folder, offline: for tests and smoke runs."""

from __future__ import annotations

from pathlib import Path

from trainers.text.hub import prepare_offline


def build_tiny_clip_vision(folder: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """CLIPVisionModelWithProjection (2 layers, width 32, 16-d projection) + processor."""
    prepare_offline()
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    folder = Path(folder)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=image_size,
        patch_size=8,
        projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).eval().save_pretrained(folder)
    Processor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return folder
