"""Time to reach pix2pix's converged quality, fairly: four arms on the same pairs and splits.

Arms: `pix2pix` (ResNet-9 from scratch with its GAN loss), `student_scratch` (our
generator from random weights), `full_ft` (all weights from the base) and `lora`
(crucial-layer LoRA with ranks searched on the validation split; the search's seconds
are charged to it). Every arm trains with the same E2GAN objective (λ=100 L1 + LSGAN
PatchGAN) at its own learning rate, tuned on the validation split by a short sweep
that is the same for every arm (and charged to none).

pix2pix trains until its validation PSNR plateaus; the target is 95% of its test PSNR
at the best validation point ("converged"). Each arm's seconds-to-target is the first
evaluation (training time only) whose test PSNR reaches it, null if never within the
budget. Speed-ups are medians over seeds. The paper reports 4.8× vs pix2pix.

    python bench/time_to_quality.py --quick                 # 1 seed, short budgets
    python bench/time_to_quality.py --seeds 3               # the full run
    python bench/time_to_quality.py --quick --teacher tiny-diffusion
"""

from __future__ import annotations

import statistics
import time

import torch
from common import Timer, base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.models import E2GANGenerator, ResnetGenerator
from trainers.train.loop import fit
from trainers.train.lora import attach_lora, trainable_parameters
from trainers.train.objective import Objective
from trainers.train.patterns import candidate_patterns, choose

OBJECTIVE = Objective(ndf=32, lr_decay_from=1.0)  # no decay: runs are open-ended, cut by time


def make(arm: str, task, ranks: dict | None = None) -> torch.nn.Module:
    if arm == "pix2pix":
        return ResnetGenerator(ngf=64, n_blocks=9)
    if arm == "student_scratch":
        return E2GANGenerator(base(task).config)
    if arm == "full_ft":
        return base(task).train()
    return attach_lora(base(task), ranks or {})


def train_for(model, task, arm: str, lr: float, budget: float, eval_every: float, seed: int, batch_size: int,
              target: float | None = None, plateau: int | None = None) -> dict:
    """Train up to `budget` s (training time); evaluate validation and test every `eval_every` s.

    Stops early when `target` (test PSNR) is reached, or when validation has not improved
    by 0.05 dB for `plateau` evaluations.
    """
    use_text = arm != "pix2pix"
    timer = Timer()
    curve: list[tuple[float, float, float]] = []
    state = {"next": eval_every, "best": -1e9, "since": 0, "stop": False}

    def evaluate(t: float) -> None:
        val, test = held_out_psnr(model, task.validation, use_text), held_out_psnr(model, task.test, use_text)
        curve.append((round(t, 2), round(val, 3), round(test, 3)))
        if val > state["best"] + 0.05:
            state["best"], state["since"] = val, 0
        else:
            state["since"] += 1
        if (target is not None and test >= target) or (plateau is not None and state["since"] >= plateau):
            state["stop"] = True

    def on_step(step: int, loss: float) -> bool:
        elapsed = timer.pause()
        if elapsed >= state["next"]:
            evaluate(elapsed)
            state["next"] += eval_every
        timer.resume()
        return state["stop"] or elapsed >= budget

    evaluate(0.0)
    timer.resume()
    result = fit(model, task.train, steps=10**9, batch_size=batch_size, lr=lr, seed=seed, use_text=use_text,
                 objective=OBJECTIVE, on_step=on_step)
    elapsed = timer.pause()
    evaluate(elapsed)
    best = max(curve, key=lambda c: c[1])
    return {"curve": curve, "steps": result.steps, "seconds": round(elapsed, 2),
            "test_at_best_validation": best[2], "best_validation": best[1],
            "images_per_s": round(result.steps * batch_size / max(elapsed, 1e-9), 1)}


def tune_lr(arm: str, task, grid: list[float], seconds: float, seed: int, batch_size: int, ranks=None) -> float:
    """The learning rate with the best validation PSNR after `seconds` of training."""
    scores = {}
    for lr in grid:
        torch.manual_seed(seed)
        run = train_for(make(arm, task, ranks), task, arm, lr, seconds, seconds, seed, batch_size)
        scores[lr] = run["best_validation"]
    return max(scores, key=scores.get)


def search_ranks(task, ranks: list[int], trials: int, steps: int, lr: float, seed: int, batch_size: int) -> tuple[dict, float]:
    """The rank search as the pipeline runs it (cheapest within 0.25 dB on validation), timed."""
    started = time.perf_counter()
    results = []
    for pattern in candidate_patterns(ranks, trials, seed):
        torch.manual_seed(seed)
        model = attach_lora(base(task), pattern)
        fit(model, task.train, steps=steps, batch_size=batch_size, lr=lr, seed=seed, objective=OBJECTIVE)
        results.append({"ranks": pattern, "psnr": held_out_psnr(model, task.validation),
                        "trainable_params": trainable_parameters(model)})
    return choose(results, 0.25)["ranks"], time.perf_counter() - started


def time_to(curve: list, target: float) -> float | None:
    return next((t for t, _, test in curve if test >= target), None)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds (default 3, quick 1)")
    p.add_argument("--budget", type=float, default=None, help="max training seconds per arm (default 900, quick 100)")
    p.add_argument("--tune-seconds", type=float, default=None, help="seconds per learning rate tried (default 60, quick 8)")
    p.add_argument("--lr-grid", default="2e-4,1e-3,5e-3")
    p.add_argument("--search-steps", type=int, default=None, help="steps per rank-search trial (default 80, quick 30)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    quick = args.quick
    seeds = args.seeds or (1 if quick else 3)
    budget = args.budget or (100.0 if quick else 900.0)
    tune_seconds = args.tune_seconds or (8.0 if quick else 60.0)
    search_steps = args.search_steps or (30 if quick else 80)
    grid = [float(x) for x in args.lr_grid.split(",")]
    eval_every = budget / 20
    arms = ["pix2pix", "student_scratch", "full_ft", "lora"]
    reach: dict[str, list] = {a: [] for a in arms}
    lrs: dict[str, list] = {a: [] for a in arms}
    targets, converged, search_seconds, chosen_ranks, params = [], [], [], [], {}
    for seed in range(args.seed, args.seed + seeds):
        args.seed = seed
        task = load_task(args)
        ranks, searched = search_ranks(task, [1, 2, 4], 4, search_steps, 5e-3, seed, args.batch_size)
        search_seconds.append(round(searched, 2))
        chosen_ranks.append(ranks)
        lr = {a: tune_lr(a, task, grid, tune_seconds, seed, args.batch_size, ranks) for a in arms}
        torch.manual_seed(seed)
        ref = train_for(make("pix2pix", task), task, "pix2pix", lr["pix2pix"], budget, eval_every, seed,
                        args.batch_size, plateau=4)
        converged.append(ref["test_at_best_validation"])
        target = round(0.95 * ref["test_at_best_validation"], 3)
        targets.append(target)
        reach["pix2pix"].append(time_to(ref["curve"], target))
        print(f"seed {seed} pix2pix          lr {lr['pix2pix']:g} → {reach['pix2pix'][-1]} s (converged test "
              f"{ref['test_at_best_validation']} dB after {ref['seconds']} s; search {searched:.1f} s)", flush=True)
        for arm in arms[1:]:
            torch.manual_seed(seed)
            model = make(arm, task, ranks)
            params[arm] = trainable_parameters(model)
            run = train_for(model, task, arm, lr[arm], budget, eval_every, seed, args.batch_size, target=target)
            t = time_to(run["curve"], target)
            reach[arm].append(None if t is None else round(t + (searched if arm == "lora" else 0.0), 2))
            print(f"seed {seed} {arm:16s} lr {lr[arm]:g} → {reach[arm][-1]} s (target {target} dB)", flush=True)
        for a in arms:
            lrs[a].append(lr[a])
    params["pix2pix"] = trainable_parameters(make("pix2pix", task))

    def speedup(ref_arm: str, arm: str) -> float | None:
        ratios = [r / t for r, t in zip(reach[ref_arm], reach[arm], strict=True) if r and t]
        return round(statistics.median(ratios), 2) if ratios else None

    emit({
        "bench": "time_to_quality",
        "teacher": args.teacher,
        "concept": task.concept,
        "resolution": args.resolution,
        "arms": arms,
        "seeds": seeds,
        "quick": quick,
        "budget_s": budget,
        "target_psnr": targets,
        "pix2pix_converged_test_psnr": converged,
        "target_rule": "95% of pix2pix's test PSNR at its best validation PSNR, trained until validation plateaus",
        "seconds_to_target": reach,
        "speedup_vs_pix2pix": {a: speedup("pix2pix", a) for a in arms[1:]},
        "speedup_vs_student_scratch": {a: speedup("student_scratch", a) for a in ("full_ft", "lora")},
        "search_seconds": search_seconds,
        "lora_ranks": chosen_ranks,
        "learning_rates": lrs,
        "trainable_params": params,
    })


if __name__ == "__main__":
    main()
