"""The per-concept fine-tune: crucial-layer LoRA with the searched ranks, via Ray Train.

The base stays frozen; only the LoRA matrices train. Checkpoints are PEFT adapter
folders (safetensors) so a resumed run and the published adapter share one format.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainers.models.generator import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairTensors


@dataclass
class ConceptTrainSettings:
    ranks: dict[str, int]
    steps: int
    batch_size: int
    lr: float
    seed: int
    max_seconds: float
    adversarial_weight: float = 0.0
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    checkpoint_every: int = 100


def concept_train_loop(config: dict) -> None:
    """Per-worker loop (module-level so Ray workers import it from the package)."""
    import ray.train
    import ray.train.torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from tqdm import tqdm

    from trainers.train.loop import fit
    from trainers.train.lora import attach_lora, save_adapter
    from trainers.train.ray_run import report_checkpoint

    torch.manual_seed(config["seed"])
    torch.set_num_threads(max(1, int(config["threads"])))
    base = E2GANGenerator(GeneratorConfig(**config["base_config"]))
    base.load_state_dict(config["base_state"])
    model = attach_lora(base, config["ranks"])
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            set_peft_model_state_dict(model, load_file(str(Path(folder) / "adapter_model.safetensors")))
            start = int((Path(folder) / "step.txt").read_text())
    train: PairTensors = config["train"]
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    if world > 1:  # each worker trains on its own slice of the pairs
        train = train.subset(list(range(rank, len(train), world)))
        model = ray.train.torch.prepare_model(model)
    bar = tqdm(total=config["steps"], initial=start, desc="fine-tune", disable=rank != 0, mininterval=5)
    started = time.perf_counter()

    def on_step(step: int, loss: float) -> bool:
        bar.update(1)
        out_of_time = time.perf_counter() - started > config["max_seconds"]
        if step % config["checkpoint_every"] == 0 or step == config["steps"] or out_of_time:
            inner = model.module if hasattr(model, "module") else model

            def save(folder: Path) -> None:
                save_adapter(inner, folder)
                (folder / "step.txt").write_text(str(step))

            report_checkpoint(step, loss, save)
        return out_of_time

    fit(
        model,
        train,
        steps=config["steps"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"] + rank,
        start_step=start,
        adversarial_weight=config["adversarial_weight"],
        on_step=on_step,
    )
    bar.close()


def train_concept(
    base: E2GANGenerator,
    train: PairTensors,
    settings: ConceptTrainSettings,
    storage_path: str,
    run_name: str,
    storage_filesystem=None,
) -> tuple[Path, float]:
    """Fine-tune; return (a local folder holding the final PEFT adapter, seconds)."""
    from trainers.train.ray_run import WorkerGroup, run_torch_trainer

    started = time.perf_counter()
    result = run_torch_trainer(
        concept_train_loop,
        {
            "ranks": settings.ranks,
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "seed": settings.seed,
            "max_seconds": settings.max_seconds,
            "adversarial_weight": settings.adversarial_weight,
            "checkpoint_every": settings.checkpoint_every,
            "threads": settings.cpus_per_worker,
            "base_config": base.config.to_dict(),
            "base_state": {k: v.detach().cpu() for k, v in base.state_dict().items()},
            "train": train,
        },
        WorkerGroup(settings.workers, settings.use_gpu, settings.cpus_per_worker, storage_path, run_name,
                    storage_filesystem),
        "concept fine-tune",
    )
    out = Path(tempfile.mkdtemp(prefix="e2gan-adapter-"))
    with result.checkpoint.as_directory() as folder:
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            (out / name).write_bytes((Path(folder) / name).read_bytes())
    return out, time.perf_counter() - started
