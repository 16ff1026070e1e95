"""Generator weights as safetensors with the config in the metadata (never pickle)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from e2gan_api.manifest import sha256_file
from trainers.models.generator import E2GANGenerator, GeneratorConfig


def save_generator(model: E2GANGenerator, path: Path, extra: dict[str, str] | None = None) -> Path:
    """Write weights + config atomically (a killed run never leaves a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "e2gan-generator/v1", "config": json.dumps(model.config.to_dict()), **(extra or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_generator(path: Path) -> E2GANGenerator:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: generator weights load from .safetensors only (never pickle)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such base model file; train one with `e2gan base`")
    meta = read_metadata(path)
    if "config" not in meta:
        raise ValueError(f"{path}: not an e2gan generator (no config in the safetensors metadata)")
    model = E2GANGenerator(GeneratorConfig(**json.loads(meta["config"])))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def weights_digest(path: Path) -> str:
    return sha256_file(Path(path))


def discriminator_path(generator_path: Path) -> Path:
    """Where the discriminator trained with a generator is shipped: beside it."""
    generator_path = Path(generator_path)
    return generator_path.with_name(generator_path.name.removesuffix(".safetensors") + ".discriminator.safetensors")


def save_discriminator(disc, path: Path, extra: dict[str, str] | None = None) -> Path:
    """PatchDiscriminator weights + shape in the metadata, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in disc.state_dict().items()}
    meta = {"format": "e2gan-discriminator/v1", "ndf": str(disc.ndf), "n_layers": str(disc.n_layers), **(extra or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_discriminator(path: Path):
    """The PatchDiscriminator saved at `path` (ValueError when it is not one)."""
    from trainers.models.discriminator import PatchDiscriminator

    meta = read_metadata(Path(path))
    if meta.get("format") != "e2gan-discriminator/v1":
        raise ValueError(f"{path}: not an e2gan discriminator")
    disc = PatchDiscriminator(ndf=int(meta["ndf"]), n_layers=int(meta["n_layers"]))
    disc.load_state_dict(load_file(str(path)))
    return disc


def discriminator_beside(generator_path: Path, ndf: int, n_layers: int):
    """The discriminator shipped beside a generator, if it fits (`ndf`, `n_layers`); None when none is shipped.

    ValueError, in one line, when one is there but is unreadable or of another shape: a
    fine-tune then starts fresh and says why, `e2gan base --init` refuses.
    """
    from safetensors import SafetensorError

    path = discriminator_path(generator_path)
    if not path.is_file():
        return None
    try:
        disc = load_discriminator(path)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # RuntimeError: tensors of another shape
        raise ValueError(f"{path.name} is not a readable e2gan discriminator ({str(exc).splitlines()[0]})") from None
    if (disc.ndf, disc.n_layers) != (ndf, n_layers):
        raise ValueError(f"{path.name} ({disc.n_layers} layers, ndf {disc.ndf}) does not fit this training's "
                         f"discriminator ({n_layers} layers, ndf {ndf})")
    return disc
