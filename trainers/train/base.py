"""The multi-concept base generator, trained with Ray Train's TorchTrainer.

One worker on a laptop CPU, N GPU workers on a cluster: the same loop. Checkpoints are
reported to Ray Train every `checkpoint_every` steps; rerunning with the same storage
folder and run name resumes from the last one (a killed job loses at most that much).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainers.models.generator import E2GANGenerator, GeneratorConfig

if TYPE_CHECKING:
    from trainers.train.loop import PairArrays


@dataclass
class BaseTrainSettings:
    steps: int
    batch_size: int
    lr: float
    seed: int
    max_seconds: float
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0  # reserved from Ray
    threads: int = 1  # torch threads per worker (may exceed the reservation on a laptop)
    checkpoint_every: int = 200
    generator: dict = field(default_factory=dict)
    objective: dict = field(default_factory=dict)  # an Objective's fields; empty = the default
    init: dict | None = None  # generator state to start from (None: random weights)
    init_discriminator: dict | None = None  # discriminator state to start from (None: a fresh one)


def base_train_loop(config: dict) -> None:
    """Per-worker loop (module-level so Ray workers import it from the package)."""
    import ray.train
    import ray.train.torch
    from tqdm import tqdm

    from trainers.train.checkpoint import load_checkpoint, save_checkpoint
    from trainers.train.loop import fit, new_ema, new_gan_parts, unwrap
    from trainers.train.objective import Objective, new_discriminator, place
    from trainers.train.ray_run import report_checkpoint

    torch.manual_seed(config["seed"])
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    objective = Objective(**config["objective"])
    model = E2GANGenerator(GeneratorConfig(**config["generator"]))
    if config.get("init") is not None:  # continue an existing base (a checkpoint below still wins)
        model.load_state_dict(config["init"])
    model = place(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    pairs: PairArrays = config["pairs"]
    disc = new_discriminator(objective, pairs.resolution)
    if disc is not None and config.get("init_discriminator") is not None:
        disc.load_state_dict(config["init_discriminator"])
    gan = new_gan_parts(place(disc, device), objective.discriminator_lr) if disc is not None else None
    ema = new_ema(model, objective.ema_decay)
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = load_checkpoint(Path(folder), model, optimizer, gan, ema)["step"]
        print(f"[e2gan] resuming base training from step {start}", flush=True)
    model = ray.train.torch.prepare_model(model)  # DDP across workers, on this worker's device
    if gan is not None:
        gan.disc = ray.train.torch.prepare_model(gan.disc)
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    # Pairs arrive as uint8 shards (memory-mapped here; a batch reads only its rows) or
    # arrays; each worker trains on its own slice, a view, converted a batch at a time on
    # its device. Ray Data streaming cost more than the model on a 2-core machine.
    data = pairs.subset(np.arange(rank, len(pairs), world))
    bar = tqdm(total=config["steps"], initial=start, desc="base", disable=rank != 0, mininterval=5)
    every = config["checkpoint_every"]
    started = time.perf_counter()

    def on_step(step: int, loss: float) -> bool:
        bar.update(1)
        out_of_time = time.perf_counter() - started > config["max_seconds"]
        if step % every == 0 or step == config["steps"] or out_of_time:
            report_checkpoint(step, loss, lambda folder: save_checkpoint(
                folder, unwrap(model), optimizer, step, {"loss": loss}, gan, ema))
        return out_of_time

    fit(
        model,
        data,
        steps=config["steps"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"] + rank,
        objective=objective,
        gan=gan,
        ema=ema,
        device=device,
        start_step=start,
        optimizer=optimizer,
        on_step=on_step,
    )
    bar.close()


def train_base(
    pairs: PairArrays,
    settings: BaseTrainSettings,
    storage_path: str,
    run_name: str = "base",
    storage_filesystem=None,
) -> tuple[E2GANGenerator, dict, torch.nn.Module | None]:
    """Train (or resume) the base on `pairs` (every concept's; `pairs.concept` indexes
    `pairs.text`); return the generator (its EMA when kept), the last checkpoint's state
    and the discriminator (None without an adversarial loss)."""
    from safetensors.torch import load_file

    from trainers.models.discriminator import PatchDiscriminator
    from trainers.train.checkpoint import DISC_FILE, EMA_FILE, load_checkpoint
    from trainers.train.ray_run import WorkerGroup, run_torch_trainer

    result = run_torch_trainer(
        base_train_loop,
        {
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "seed": settings.seed,
            "max_seconds": settings.max_seconds,
            "checkpoint_every": settings.checkpoint_every,
            "generator": settings.generator,
            "pairs": pairs,
            "threads": settings.threads,
            "objective": settings.objective,
            "init": settings.init,
            "init_discriminator": settings.init_discriminator,
        },
        WorkerGroup(settings.workers, settings.use_gpu, settings.cpus_per_worker, storage_path, run_name,
                    storage_filesystem, checkpoints_kept=2),
        "base training",
    )
    model = E2GANGenerator(GeneratorConfig(**settings.generator))
    disc = None
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder), model, None)
        if (Path(folder) / EMA_FILE).is_file():
            model.load_state_dict(load_file(str(Path(folder) / EMA_FILE)))
        if "discriminator" in state and (Path(folder) / DISC_FILE).is_file():
            disc = PatchDiscriminator(**state["discriminator"])
            disc.load_state_dict(load_file(str(Path(folder) / DISC_FILE)))
    return model.eval(), state, disc
