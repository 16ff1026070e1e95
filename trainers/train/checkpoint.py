"""Training checkpoints in safetensors, never pickle: the generator, its Adam state, the step,
and (when present) the discriminator with its own Adam state and the generator's EMA."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
DISC_FILE = "discriminator.safetensors"
DISC_OPTIM_FILE = "discriminator_optimizer.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.json"


def save_module(module: torch.nn.Module, path: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(path))


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    flat: dict[str, torch.Tensor] = {}
    for pid, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            flat[f"{pid}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    save_file(flat, str(path))


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    flat = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in flat.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    sd = optimizer.state_dict()
    sd["state"] = dict(sorted(state.items()))  # safetensors sorts names as strings
    optimizer.load_state_dict(sd)


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, meta: dict,
                    gan=None, ema=None) -> Path:
    """`gan` is a loop.GanParts, `ema` a torch AveragedModel (both optional)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_module(model, folder / MODEL_FILE)
    save_optimizer(optimizer, folder / OPTIM_FILE)
    extra: dict = {}
    if gan is not None:
        save_module(gan.inner, folder / DISC_FILE)
        save_optimizer(gan.optimizer, folder / DISC_OPTIM_FILE)
        extra["discriminator"] = {"ndf": gan.inner.ndf, "n_layers": gan.inner.n_layers}
    if ema is not None:
        save_module(ema.module, folder / EMA_FILE)
        extra["ema_averaged"] = int(ema.n_averaged)
    (folder / STATE_FILE).write_text(json.dumps({"step": step, **meta, **extra}))
    return folder


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    gan=None, ema=None) -> dict:
    """Restore in place; returns the saved state (with "step")."""
    folder = Path(folder)
    model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    if optimizer is not None and (folder / OPTIM_FILE).is_file():
        load_optimizer(optimizer, folder / OPTIM_FILE)
    state = json.loads((folder / STATE_FILE).read_text())
    if gan is not None and (folder / DISC_FILE).is_file():
        gan.inner.load_state_dict(load_file(str(folder / DISC_FILE)))
        if (folder / DISC_OPTIM_FILE).is_file():
            load_optimizer(gan.optimizer, folder / DISC_OPTIM_FILE)
    if ema is not None and (folder / EMA_FILE).is_file():
        ema.module.load_state_dict(load_file(str(folder / EMA_FILE)))
        ema.n_averaged.fill_(int(state.get("ema_averaged", 1)))
    return state
