"""The multi-concept base generator, trained with Ray Train's TorchTrainer.

One worker on a laptop CPU, N GPU workers on a cluster: the same loop. Checkpoints are
reported to Ray Train every `checkpoint_every` steps; rerunning with the same storage
folder and run name resumes from the last one (a killed job loses at most that much).
"""

from __future__ import annotations

import tempfile
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
    cpus_per_worker: float = 1.0  # reserved from Ray; leave some for Ray Data's tasks
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

    torch.manual_seed(config["seed"])
    torch.set_num_threads(max(1, int(config["threads"])))
    model = E2GANGenerator(GeneratorConfig(**config["generator"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = load_checkpoint(Path(folder), model, optimizer)["step"]
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    text_table = torch.as_tensor(np.asarray(config["text_table"]), dtype=torch.float32).to(device)
    shard = ray.train.get_dataset_shard("train")
    rank = ray.train.get_context().get_world_rank()

    def batches():
        while True:  # epochs until the step budget ends
            for b in shard.iter_torch_batches(
                batch_size=config["batch_size"], drop_last=True, device=device, local_shuffle_buffer_size=4 * config["batch_size"]
            ):
                yield PairTensors(_unit(b["source"]), _unit(b["target"]), text_table[b["concept"].long()])

    bar = tqdm(total=config["steps"], initial=start, desc="base", disable=rank != 0, mininterval=5)
    every = config["checkpoint_every"]
    started = time.perf_counter()

    def on_step(step: int, loss: float) -> bool:
        bar.update(1)
        out_of_time = time.perf_counter() - started > config["max_seconds"]
        if step % every == 0 or step == config["steps"] or out_of_time:
            inner = model.module if hasattr(model, "module") else model
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if rank == 0:
                    save_checkpoint(Path(tmp), inner, optimizer, step, {"loss": loss})
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report({"step": step, "loss": loss}, checkpoint=ckpt)
        return out_of_time

    fit(
        model,
        PairTensors(torch.empty(0), torch.empty(0), torch.empty(0)),
        steps=config["steps"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"],
        start_step=start,
        optimizer=optimizer,
        on_step=on_step,
        batches=batches(),
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
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainers.train.checkpoint import load_checkpoint

    items = [{"source": s, "target": t, "concept": int(c)} for s, t, c in zip(source, target, concept_index, strict=True)]
    # No global random_shuffle: its tasks need CPUs the train worker holds on a small
    # machine (it deadlocked on 2 cores); a local shuffle buffer mixes batches instead.
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.from_items(items)
    trainer = TorchTrainer(
        base_train_loop,
        train_loop_config={
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "seed": settings.seed,
            "max_seconds": settings.max_seconds,
            "checkpoint_every": settings.checkpoint_every,
            "generator": settings.generator,
            "text_table": text_table.tolist(),
            "threads": settings.threads,
        },
        scaling_config=ScalingConfig(
            num_workers=settings.workers,
            use_gpu=settings.use_gpu,
            resources_per_worker={"CPU": settings.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=0),
        ),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"base training failed: {result.error}")
    model = E2GANGenerator(GeneratorConfig(**settings.generator))
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder), model, None)
    return model.eval(), state
