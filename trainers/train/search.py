"""Rank search with Ray Tune: trials over per-group rank patterns, in parallel, ASHA-stopped.

Each trial is a function trainable (Ray 2.60's Train V2 no longer nests a trainer in a
trial, and per-trial TorchTrainers leaked CPUs under ASHA here): it attaches LoRA with
its pattern to the base generator, trains on the selected pairs on its assigned device
(a fractional GPU, or the CPU) and reports validation PSNR every few steps so ASHA can
stop weak patterns early. The test split never reaches the search.

ASHA compares trials at equal steps (time_attr="step", one shared report interval), and
its grace period is half the trial (it was a quarter). `bench/asha_fairness.py` measures
whether a pattern stopped at the first rung would have been the one chosen, for both
fractions; it has not been run yet (README, "Search noise"), so half is a provisional
choice, the safer one for cheap patterns.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from ray.tune import Callback

from trainers.models.generator import E2GANGenerator
from trainers.train.loop import PairArrays, fit
from trainers.train.lora import attach_lora, trainable_parameters
from trainers.train.patterns import candidate_patterns, choose
from trainers.train.plateau import validation_scores


@dataclass
class SearchSettings:
    ranks: list[int]
    trials: int
    parallel_trials: int
    steps: int
    batch_size: int
    lr: float
    tolerance_db: float
    early_stopping: bool
    seed: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    report_every: int = 10
    objective: dict = field(default_factory=dict)  # an Objective's fields; empty = the default
    grace_fraction: float = 0.5  # ASHA's grace period as a fraction of the trial's steps


def trial_resources(settings: SearchSettings) -> dict[str, float]:
    """What each trial reserves from Ray: fractional GPUs let several trials share one."""
    return {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}


def lora_trial(config: dict, base_state: dict, base_config: dict, train: PairArrays, validation: PairArrays) -> None:
    """One Tune trial (module-level so Ray workers can import it).

    `train` and `validation` come from the object store Tune put them in once; their
    uint8 arrays are zero-copy views shared by every trial on a node.
    """
    from ray import tune

    from trainers.models.generator import GeneratorConfig
    from trainers.train.objective import Objective, place, trial_device

    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    device = trial_device()
    base = E2GANGenerator(GeneratorConfig(**base_config))
    base.load_state_dict(base_state)
    model = place(attach_lora(base, config["pattern"]), device)
    params = trainable_parameters(model)
    every = config["report_every"]

    def on_step(step: int, loss: float) -> None:
        if step % every == 0 or step == config["steps"]:
            scores = validation_scores(model, validation)
            se = float(scores.std() / len(scores) ** 0.5) if len(scores) > 1 else 0.0
            tune.report({"psnr": float(scores.mean()), "psnr_se": se, "loss": loss, "step": step,
                         "trainable_params": params, "device": device.type})

    fit(model, train, steps=config["steps"], batch_size=config["batch_size"], lr=config["lr"], seed=config["seed"],
        objective=Objective(**config["objective"]), device=device, on_step=on_step)


def run_search(
    base: E2GANGenerator,
    train: PairArrays,
    validation: PairArrays,
    settings: SearchSettings,
    storage_path: str | None = None,
    storage_filesystem=None,
    on_trial: Callable[[int, dict | None, float | None], None] | None = None,
) -> dict:
    """Run the search on the validation split; return {"chosen": trial, "trials": [...], ...}."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    patterns = candidate_patterns(settings.ranks, settings.trials, settings.seed)
    # with_parameters puts each argument in the object store once; every trial reads it there.
    trainable = tune.with_parameters(
        lora_trial,
        base_state={k: v.detach().cpu() for k, v in base.state_dict().items()},
        base_config=base.config.to_dict(),
        train=train,
        validation=validation,
    )
    trainable = tune.with_resources(trainable, trial_resources(settings))
    report_every = min(settings.report_every, settings.steps)
    scheduler = (
        ASHAScheduler(
            time_attr="step",
            max_t=settings.steps,
            grace_period=max(report_every, int(settings.steps * settings.grace_fraction)),
            reduction_factor=2,
        )
        if settings.early_stopping
        else FIFOScheduler()
    )
    param_space = {
        "pattern": tune.grid_search(patterns),
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "seed": settings.seed,
        "report_every": report_every,
        "objective": settings.objective,
        "threads": max(1, int(settings.cpus_per_trial)),
    }
    run_config = tune.RunConfig(
        name=f"rank-search-{int(time.time() * 1000)}",
        storage_path=storage_path or tempfile.mkdtemp(prefix="e2gan-tune-"),
        storage_filesystem=storage_filesystem,
        verbose=0,
        callbacks=[TrialProgress(on_trial)] if on_trial else None,
        failure_config=tune.FailureConfig(max_failures=0),
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="psnr",
            mode="max",
            scheduler=scheduler,
            max_concurrent_trials=settings.parallel_trials,
        ),
        run_config=run_config,
    )
    grid = tuner.fit()
    trials = []
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"rank search trial failed: {result.error}")
        m = result.metrics or {}
        trials.append(
            {
                "ranks": result.config["pattern"],
                "psnr": m.get("psnr"),
                "psnr_se": m.get("psnr_se"),
                "device": m.get("device"),
                "steps": m.get("step"),
                "trainable_params": m.get("trainable_params"),
                "stopped_early": (m.get("step") or 0) < settings.steps,
            }
        )
    trials.sort(key=lambda t: json.dumps(t["ranks"], sort_keys=True))
    chosen = choose(trials, settings.tolerance_db)
    best = max((t for t in trials if t["psnr"] is not None), key=lambda t: t["psnr"])
    # The noise of a trial's score: the standard error of its mean over validation images.
    # Two trials closer than ~2 standard errors are not told apart by this split.
    noise = best.get("psnr_se") or 0.0
    return {
        "chosen": chosen,
        "best_psnr": best["psnr"],
        "split": "validation",
        "tolerance_db": settings.tolerance_db,
        "noise_db": round(noise, 4),
        "tolerance_below_noise": settings.tolerance_db < 2 * noise,
        "asha": {"time_attr": "step", "grace_period_steps": max(report_every, int(settings.steps * settings.grace_fraction)),
                 "reduction_factor": 2} if settings.early_stopping else None,
        "trials": trials,
        "rule": "cheapest pattern (fewest trainable parameters) within tolerance_db of the best validation PSNR",
    }


# Listeners stay on the driver: Tune cloudpickles its callbacks with the experiment
# state, and a listener holding the catalog's S3 client (sockets) cannot be pickled.
_TRIAL_LISTENERS: dict[str, Callable[[int, dict | None, float | None], None]] = {}


class TrialProgress(Callback):
    """A Tune callback forwarding trial completions (progress bars, the operator's status).

    Module-level, and holding only a key, so it pickles by reference.
    """

    def __init__(self, on_trial: Callable[[int, dict | None, float | None], None]) -> None:
        self.key, self.done = uuid.uuid4().hex, 0
        _TRIAL_LISTENERS[self.key] = on_trial

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        listener = _TRIAL_LISTENERS.get(self.key)
        if listener is not None:
            listener(self.done, trial.config.get("pattern"), trial.last_result.get("psnr"))


def write_search_report(report: dict, path: Path) -> Path:
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True))
    return Path(path)
