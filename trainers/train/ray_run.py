"""One way to run a training loop on Ray Train, shared by the base and the concept fine-tune."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WorkerGroup:
    """How many Ray Train workers, on what, and where their checkpoints go."""

    workers: int
    use_gpu: bool
    cpus_per_worker: float
    storage_path: str
    run_name: str
    storage_filesystem: object | None = None
    checkpoints_kept: int = 1


def run_torch_trainer(loop: Callable[[dict], None], config: dict, group: WorkerGroup, what: str):
    """Fit a TorchTrainer; a run whose `storage_path/run_name` exists resumes from its checkpoint.

    Returns the Ray Train result (its `.checkpoint` is the last one reported).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainers.pipeline.progress import train_callbacks

    trainer = TorchTrainer(
        loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=group.workers,
            use_gpu=group.use_gpu,
            resources_per_worker={"CPU": group.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=group.run_name,
            storage_path=group.storage_path,
            storage_filesystem=group.storage_filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=group.checkpoints_kept),
            failure_config=FailureConfig(max_failures=0),  # fail fast; a rerun resumes
            callbacks=train_callbacks(),  # the CLI console's step count (none without one)
        ),
    )
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"{what} failed: {result.error}")
    return result


def report_checkpoint(step: int, loss: float, save: Callable[[Path], None]) -> None:
    """Report metrics from every worker; rank 0 also saves and reports a checkpoint folder."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            save(Path(tmp))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"step": step, "loss": loss}, checkpoint=checkpoint)
