"""`e2gan apply`: run a published adapter on the user's images, each at its own size.

The generator is fully convolutional (its attention works on however many tokens the
bottleneck has), so a photo is edited at its own resolution, rounded down to a multiple
of 8 (the generator down-samples three times) and bounded by `max_side` so a 6000 px
photo does not exhaust memory: attention at H/8 grows with the fourth power of the side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from e2gan_api.spec import RESOLUTION_MULTIPLE

DEFAULT_MAX_SIDE = 1024


class ApplyError(ValueError):
    """Refused input, one line."""


def edit_size(width: int, height: int, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """The (width, height) a photo is edited at: its own, scaled to fit `max_side`, rounded down to 8."""
    if max_side < RESOLUTION_MULTIPLE:
        raise ApplyError(f"--max-side: {max_side} is below {RESOLUTION_MULTIPLE} — use a side like 1024")
    scale = min(1.0, max_side / max(width, height))
    w, h = (max(RESOLUTION_MULTIPLE, int(side * scale) // RESOLUTION_MULTIPLE * RESOLUTION_MULTIPLE) for side in (width, height))
    return w, h


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ApplyError(f"{path}: not a readable image ({type(exc).__name__}) — give JPEG or PNG files") from exc


def apply_adapter(
    adapter: Path,
    images: list[Path],
    out: Path,
    base_path: Path | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    on_image: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Edit every image; all inputs are checked before anything is written."""
    import torch

    from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest
    from trainers.data.convert import to_tensor, to_uint8
    from trainers.models.weights import load_generator, weights_digest
    from trainers.pipeline.resources import builtin_base_path
    from trainers.text import load_text_encoder
    from trainers.text.embedding import load_text_embedding
    from trainers.train.lora import load_adapter

    edit_size(max_side, max_side, max_side)  # refuses a bad --max-side before any work
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
    for path in images:
        if not Path(path).is_file():
            raise ApplyError(f"{path}: no such image file")
    photos = [_open_rgb(Path(p)) for p in images]  # every input readable before the first write
    base = load_generator(base_path)
    try:
        text = load_text_embedding(Path(adapter), base.config.text_dim)
    except ValueError as exc:
        raise ApplyError(str(exc)) from exc
    if text is None:  # adapters published before the embedding was stored with them
        text = load_text_encoder(None).encode([manifest.prompt])
    model = load_adapter(base, Path(adapter)).eval()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, img in zip(images, photos, strict=True):
        size = edit_size(*img.size, max_side)
        if size != img.size:
            img = img.resize(size, Image.LANCZOS)
        with torch.no_grad():
            y = to_uint8(model(to_tensor(np.asarray(img)[None]), text))[0]
        target = out / f"{Path(path).stem}-{manifest.concept}.png"
        Image.fromarray(y).save(target)
        written.append(target)
        if on_image is not None:
            on_image(target)
    return written
