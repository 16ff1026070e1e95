"""The per-concept fine-tune: crucial-layer LoRA with the searched ranks, via Ray Train.

The base stays frozen; only the LoRA matrices train, against the E2GAN objective (λ·L1
+ a conditional PatchGAN started from the base's discriminator when it shipped one).
Checkpoints hold the PEFT adapter, its Adam state, the discriminator with its own
Adam state, the EMA adapter and the step, so a resumed run continues all of them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainers.models.generator import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairArrays

EMA_DIR = "ema"
BEST_DIR = "best"  # the adapter at the best validation check (what is published)
STEP_FILE = "step.txt"
PLATEAU_FILE = "plateau.json"


@dataclass
class FineTune:
    adapter: Path  # a local folder with the published adapter (adapter_config.json + weights)
    seconds: float
    plateau: dict | None = None  # checks, best step and PSNR, and whether it stopped early


@dataclass
class ConceptTrainSettings:
    ranks: dict[str, int]
    steps: int
    batch_size: int
    lr: float
    seed: int
    max_seconds: float
    objective: dict = field(default_factory=dict)  # an Objective's fields; empty = the default
    discriminator: dict | None = None  # {"shape": {ndf, n_layers}, "state": {...}} from the base
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    checkpoint_every: int = 100
    validation_every: int = 50  # steps between validation checks (with a validation split)
    plateau_patience: int = 4  # checks without a gain before stopping; 0 trains every step


def _discriminator(objective, config: dict, resolution: int):
    from trainers.models.discriminator import PatchDiscriminator
    from trainers.train.objective import new_discriminator

    given = config.get("discriminator")
    if not objective.adversarial:
        return None
    if not given:
        return new_discriminator(objective, resolution)
    disc = PatchDiscriminator(**given["shape"])
    disc.load_state_dict(given["state"])
    return disc


def concept_train_loop(config: dict) -> None:
    """Per-worker loop (module-level so Ray workers import it from the package)."""
    import ray.train
    import ray.train.torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from tqdm import tqdm

    from trainers.train.checkpoint import (
        DISC_FILE,
        DISC_OPTIM_FILE,
        OPTIM_FILE,
        load_optimizer,
        save_module,
        save_optimizer,
    )
    from trainers.train.loop import fit, new_ema, new_gan_parts, unwrap
    from trainers.train.lora import attach_lora, save_adapter
    from trainers.train.objective import Objective, place
    from trainers.train.plateau import Plateau, validation_scores
    from trainers.train.ray_run import report_checkpoint

    torch.manual_seed(config["seed"])
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    objective = Objective(**config["objective"])
    base = E2GANGenerator(GeneratorConfig(**config["base_config"]))
    base.load_state_dict(config["base_state"])
    model = place(attach_lora(base, config["ranks"]), device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config["lr"], betas=(0.5, 0.999))
    train: PairArrays = config["train"]  # uint8 views of the object store's copy (Ray Train put it once)
    disc = _discriminator(objective, config, train.resolution)
    gan = new_gan_parts(place(disc, device), objective.discriminator_lr) if disc is not None else None
    ema = new_ema(model, objective.ema_decay)
    start = 0
    validation: PairArrays | None = config.get("validation")
    plateau = Plateau(config.get("plateau_patience", 0))
    best_dir = Path(tempfile.mkdtemp(prefix="e2gan-best-"))  # rank 0's best check so far
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            folder = Path(folder)
            if (folder / PLATEAU_FILE).is_file():
                plateau = Plateau.from_dict(json.loads((folder / PLATEAU_FILE).read_text()))
                shutil.copytree(folder / BEST_DIR, best_dir, dirs_exist_ok=True)
            set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
            load_optimizer(optimizer, folder / OPTIM_FILE)
            if gan is not None and (folder / DISC_FILE).is_file():
                gan.inner.load_state_dict(load_file(str(folder / DISC_FILE)))
                load_optimizer(gan.optimizer, folder / DISC_OPTIM_FILE)
            if ema is not None and (folder / EMA_DIR).is_dir():
                set_peft_model_state_dict(ema.module, load_file(str(folder / EMA_DIR / "adapter_model.safetensors")))
                ema.n_averaged.fill_(1)
            start = int((folder / STEP_FILE).read_text())
        print(f"[e2gan] resuming the fine-tune from step {start}", flush=True)
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    if world > 1:  # each worker trains on its own slice of the pairs (a view: no pixels copied)
        train = train.subset(np.arange(rank, len(train), world))
    model = ray.train.torch.prepare_model(model)  # DDP across workers, on this worker's device
    if gan is not None:
        gan.disc = ray.train.torch.prepare_model(gan.disc)
    bar = tqdm(total=config["steps"], initial=start, desc="fine-tune", disable=rank != 0, mininterval=5)
    started = time.perf_counter()

    def check(step: int) -> bool:
        """Score the generator as it would be published; True when the plateau says stop."""
        judged = ema.module if ema is not None else unwrap(model)
        if rank == 0 and plateau.update(step, float(validation_scores(judged, validation).mean())):
            save_adapter(judged, best_dir)
        # On the worker's device: NCCL (Ray Train's backend on GPUs) broadcasts CUDA tensors only.
        stop = torch.tensor([int(plateau.stop)], device=device)
        if world > 1:  # every worker stops at the same step, or DDP's next all-reduce hangs
            torch.distributed.broadcast(stop, src=0)
        return bool(stop.item())

    def on_step(step: int, loss: float) -> bool:
        bar.update(1)
        out_of_time = time.perf_counter() - started > config["max_seconds"]
        checked = validation is not None and (step % config["validation_every"] == 0 or step == config["steps"])
        plateaued = check(step) and step < config["steps"] if checked else False  # the last step is no early stop
        if step % config["checkpoint_every"] == 0 or step == config["steps"] or out_of_time or plateaued:

            def save(folder: Path) -> None:
                save_adapter(unwrap(model), folder)
                save_optimizer(optimizer, folder / OPTIM_FILE)
                if gan is not None:
                    save_module(gan.inner, folder / DISC_FILE)
                    save_optimizer(gan.optimizer, folder / DISC_OPTIM_FILE)
                if ema is not None:
                    save_adapter(ema.module, folder / EMA_DIR)
                if validation is not None:
                    shutil.copytree(best_dir, folder / BEST_DIR)
                    stopped = {"stopped_early": plateaued, "last_step": step}
                    (folder / PLATEAU_FILE).write_text(json.dumps(plateau.to_dict() | stopped))
                (folder / STEP_FILE).write_text(str(step))

            report_checkpoint(step, loss, save)
        return out_of_time or plateaued

    fit(
        model,
        train,
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
    shutil.rmtree(best_dir, ignore_errors=True)


def train_concept(
    base: E2GANGenerator,
    train: PairArrays,
    settings: ConceptTrainSettings,
    storage_path: str,
    run_name: str,
    storage_filesystem=None,
    validation: PairArrays | None = None,
) -> FineTune:
    """Fine-tune; return a local folder holding the adapter to publish, the seconds, and
    with a validation split the plateau's record.

    The adapter is the best validation check when there is a validation split; else the
    generator's EMA when the objective keeps one (as pix2pix-style GANs publish), else
    the last weights.
    """
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
            "objective": settings.objective,
            "discriminator": settings.discriminator,
            "checkpoint_every": settings.checkpoint_every,
            "validation_every": settings.validation_every,
            "plateau_patience": settings.plateau_patience,
            "threads": settings.cpus_per_worker,
            "base_config": base.config.to_dict(),
            "base_state": {k: v.detach().cpu() for k, v in base.state_dict().items()},
            "train": train,
            "validation": validation,
        },
        WorkerGroup(settings.workers, settings.use_gpu, settings.cpus_per_worker, storage_path, run_name,
                    storage_filesystem),
        "concept fine-tune",
    )
    out = Path(tempfile.mkdtemp(prefix="e2gan-adapter-"))
    plateau = None
    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        chosen = next(d for d in (folder / BEST_DIR, folder / EMA_DIR, folder)
                      if (d / "adapter_model.safetensors").is_file())
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            (out / name).write_bytes((chosen / name).read_bytes())
        if (folder / PLATEAU_FILE).is_file():
            plateau = json.loads((folder / PLATEAU_FILE).read_text())
    return FineTune(out, time.perf_counter() - started, plateau)
