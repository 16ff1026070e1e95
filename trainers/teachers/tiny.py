"""Tiny random-weight diffusion pipelines (and a tiny CLIP) built from configs, offline.

For tests and smoke runs: the folder is written with save_pretrained, so it loads by
path through DiffusionTeacher exactly like a real checkpoint. It lives in the package
because Ray workers import it from here, never from test files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.text.hub import prepare_offline
from trainers.text.tiny import build_tiny_clip_tokenizer, save_tiny_clip_tokenizer, tiny_clip_text_config

HIDDEN = 32  # text width = UNet cross-attention width


def build_tiny_pipeline(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny InstructPix2Pix ('instruct-pix2pix') or img2img ('sdedit') pipeline.

    UNet (16, 32) channels with cross-attention, a 2-block VAE (scale factor 2), a 2-layer
    CLIP text model and the 1 190-token tokenizer; about 0.3 M parameters in all.
    """
    prepare_offline()
    import diffusers
    import torch
    from transformers import CLIPTextModel

    if kind not in ("instruct-pix2pix", "sdedit"):
        raise ValueError(f"kind must be instruct-pix2pix or sdedit, not {kind!r}")
    folder = Path(folder)
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=8 if kind == "instruct-pix2pix" else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    tokenizer = build_tiny_clip_tokenizer()
    text_encoder = CLIPTextModel(tiny_clip_text_config(len(tokenizer), HIDDEN))
    scheduler: Any
    if kind == "instruct-pix2pix":
        scheduler = diffusers.EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        )
        cls = diffusers.StableDiffusionInstructPix2PixPipeline
    else:
        scheduler = diffusers.DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        cls = diffusers.StableDiffusionImg2ImgPipeline
    pipe = cls(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    # Real checkpoints ship vocab.json and merges.txt; transformers 5 writes tokenizer.json only.
    save_tiny_clip_tokenizer(folder / "tokenizer")
    return folder


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A random tiny transformers CLIPModel (text + vision) with its tokenizer, saved to folder."""
    prepare_offline()
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    folder = Path(folder)
    tokenizer = save_tiny_clip_tokenizer(folder)
    text = tiny_clip_text_config(len(tokenizer), HIDDEN)
    vision = CLIPVisionConfig(
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=HIDDEN,
    )
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=HIDDEN)
    CLIPModel(config).eval().save_pretrained(folder)
    return folder
