"""Training checkpoints in safetensors (model, Adam state, step): resumable, never pickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, meta: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / MODEL_FILE))
    flat: dict[str, torch.Tensor] = {}
    for pid, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            flat[f"{pid}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    save_file(flat, str(folder / OPTIM_FILE))
    (folder / STATE_FILE).write_text(json.dumps({"step": step, **meta}))
    return folder


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore in place; returns the saved state (with "step")."""
    folder = Path(folder)
    model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    if optimizer is not None and (folder / OPTIM_FILE).is_file():
        flat = load_file(str(folder / OPTIM_FILE))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in flat.items():
            pid, key = name.split(".", 1)
            state.setdefault(int(pid), {})[key] = value
        sd = optimizer.state_dict()
        sd["state"] = dict(sorted(state.items()))  # safetensors sorts names as strings
        optimizer.load_state_dict(sd)
    return json.loads((folder / STATE_FILE).read_text())
