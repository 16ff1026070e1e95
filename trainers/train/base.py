"""The multi-concept base generator, trained with Ray Train's TorchTrainer.

One worker on a laptop CPU, N GPU workers on a cluster: the same loop. Checkpoints are
reported to Ray Train every `checkpoint_every` steps; rerunning with the same storage
folder and run name resumes from the last one (a killed job loses at most that much).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainers.models.generator import E2GANGenerator, GeneratorConfig


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


def _unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] → float [N, 3, H, W] in [-1, 1]."""
    return batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def base_train_loop(config: dict) -> None:
    """Per-worker loop (module-level so Ray workers import it from the package)."""
    import ray.train
    import ray.train.torch
    from tqdm import tqdm

    from trainers.train.checkpoint import load_checkpoint, save_checkpoint
    from trainers.train.loop import PairTensors, fit
    from trainers.train.ray_run import report_checkpoint

    torch.manual_seed(config["seed"])
    torch.set_num_threads(max(1, int(config["threads"])))
    model = E2GANGenerator(GeneratorConfig(**config["generator"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = load_checkpoint(Path(folder), model, optimizer)["step"]
        print(f"[e2gan] resuming base training from step {start}", flush=True)
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    # Pairs arrive in memory (a few thousand small images); each worker trains on its
    # own slice. Ray Data streaming cost more than the model on a 2-core machine.
    index = np.arange(rank, len(config["source"]), world)
    text_table = torch.as_tensor(np.asarray(config["text_table"]), dtype=torch.float32)
    data = PairTensors(
        _unit(torch.from_numpy(config["source"][index])).to(device),
        _unit(torch.from_numpy(config["target"][index])).to(device),
        text_table[torch.from_numpy(config["concept"][index])].to(device),
    )
    bar = tqdm(total=config["steps"], initial=start, desc="base", disable=rank != 0, mininterval=5)
    every = config["checkpoint_every"]
    started = time.perf_counter()

    def on_step(step: int, loss: float) -> bool:
        bar.update(1)
        out_of_time = time.perf_counter() - started > config["max_seconds"]
        if step % every == 0 or step == config["steps"] or out_of_time:
            inner = model.module if hasattr(model, "module") else model
            report_checkpoint(step, loss, lambda folder: save_checkpoint(folder, inner, optimizer, step, {"loss": loss}))
        return out_of_time

    fit(
        model,
        data,
        steps=config["steps"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"] + rank,
        start_step=start,
        optimizer=optimizer,
        on_step=on_step,
    )
    bar.close()


def train_base(
    source: np.ndarray,
    target: np.ndarray,
    concept_index: np.ndarray,
    text_table: np.ndarray,
    settings: BaseTrainSettings,
    storage_path: str,
    run_name: str = "base",
    storage_filesystem=None,
) -> tuple[E2GANGenerator, dict]:
    """Train (or resume) the base; return the generator and the last checkpoint's state."""
    from trainers.train.checkpoint import load_checkpoint
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
            "text_table": text_table.tolist(),
            "source": source,
            "target": target,
            "concept": concept_index.astype(np.int64),
            "threads": settings.threads,
        },
        WorkerGroup(settings.workers, settings.use_gpu, settings.cpus_per_worker, storage_path, run_name,
                    storage_filesystem, checkpoints_kept=2),
        "base training",
    )
    model = E2GANGenerator(GeneratorConfig(**settings.generator))
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder), model, None)
    return model.eval(), state
