"""`e2gan apply`: run a published adapter on the user's images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


class ApplyError(ValueError):
    """Refused input, one line."""


def apply_adapter(adapter: Path, images: list[Path], out: Path, base_path: Path | None = None) -> list[Path]:
    import torch

    from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest
    from trainers.data.convert import to_tensor, to_uint8
    from trainers.models.weights import load_generator, weights_digest
    from trainers.pipeline.resources import builtin_base_path
    from trainers.text import load_text_encoder
    from trainers.train.lora import load_adapter

    manifest_path = Path(adapter) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ApplyError(f"{adapter}: not an adapter folder (no {MANIFEST_NAME}); pull one with `e2gan catalog pull`")
    manifest = AdapterManifest.model_validate(json.loads(manifest_path.read_text()))
    base_path = Path(base_path) if base_path else builtin_base_path()
    if not base_path.is_file():
        raise ApplyError(f"--base: {base_path} does not exist")
    if weights_digest(base_path) != manifest.base_model_digest:
        raise ApplyError(
            f"--base: {base_path} is not the base this adapter was trained on "
            f"(manifest wants sha256 {manifest.base_model_digest[:16]}…)"
        )
    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise ApplyError(f"{missing[0]}: no such image")
    model = load_adapter(load_generator(base_path), Path(adapter))
    text = load_text_encoder(None).encode([manifest.prompt])
    res = manifest.resolution
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        try:
            img = Image.open(path).convert("RGB")
        except OSError as exc:
            raise ApplyError(f"{path}: not a readable image ({exc})") from exc
        w, h = img.size
        side = min(w, h)
        img = img.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize((res, res), Image.BICUBIC)
        x = to_tensor(np.asarray(img)[None])
        with torch.no_grad():
            y = to_uint8(model(x, text))[0]
        target = out / f"{Path(path).stem}-{manifest.concept}.png"
        Image.fromarray(y).save(target)
        written.append(target)
    return written
