"""Time to reach pix2pix's quality: pix2pix ResNet-9 from scratch vs full fine-tune of the
base vs crucial-layer LoRA with searched ranks, on the same pairs, side by side.

Each arm trains for the same wall-clock budget (evaluation excluded) and is scored on
held-out pairs at regular intervals. The target is the best held-out PSNR pix2pix
reaches within the budget; each arm's time-to-target is the first evaluation at or
above it (null when never reached). The paper reports 4.8× less time than pix2pix.

    python bench/time_to_quality.py --quick
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from common import Timer, base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.models import ResnetGenerator
from trainers.train.loop import fit
from trainers.train.lora import attach_lora, trainable_parameters


def run_arm(name, model, task, lr, budget, eval_every, batch_size, use_text=True) -> dict:
    timer = Timer()
    curve = [(0.0, held_out_psnr(model, task.held, use_text))]
    timer.resume()
    state = {"next": eval_every}

    def on_step(step: int, loss: float) -> bool:
        elapsed = timer.pause()
        if elapsed >= state["next"]:
            curve.append((round(elapsed, 2), held_out_psnr(model, task.held, use_text)))
            state["next"] += eval_every
        timer.resume()
        return elapsed >= budget

    result = fit(model, task.train, steps=10**9, batch_size=batch_size, lr=lr, use_text=use_text, on_step=on_step)
    elapsed = timer.pause()
    curve.append((round(elapsed, 2), held_out_psnr(model, task.held, use_text)))
    print(f"{name:10s} steps={result.steps:5d} final PSNR {curve[-1][1]:.2f} dB", flush=True)
    return {
        "trainable_params": trainable_parameters(model),
        "steps": result.steps,
        "images_per_s": round(result.steps * batch_size / elapsed, 1),
        "curve": [(t, round(p, 3)) for t, p in curve],
        "best_psnr": round(max(p for _, p in curve), 3),
    }


def time_to(curve: list, target: float) -> float | None:
    return next((t for t, p in curve if p >= target), None)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=None, help="seconds of training per arm (default 600, quick 150)")
    p.add_argument("--ranks", default=None, help='LoRA ranks as JSON, or an adapter folder whose manifest.json has them')
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    budget = args.budget or (150.0 if args.quick else 600.0)
    eval_every = budget / 15
    task = load_task(args)
    if args.ranks and Path(args.ranks).is_dir():
        ranks = json.loads((Path(args.ranks) / "manifest.json").read_text())["ranks"]
    elif args.ranks:
        ranks = json.loads(args.ranks)
    else:
        ranks = {"down": 2, "self_attn": 2, "cross_attn": 4, "mlp": 2, "up": 4}
    torch.manual_seed(args.seed)
    arms = {
        "pix2pix": run_arm("pix2pix", ResnetGenerator(ngf=64, n_blocks=9), task, 1e-3, budget, eval_every, args.batch_size, use_text=False),
        "full_ft": run_arm("full_ft", base(task).train(), task, 1e-3, budget, eval_every, args.batch_size),
        "lora": run_arm("lora", attach_lora(base(task), ranks), task, 5e-3, budget, eval_every, args.batch_size),
    }
    target = arms["pix2pix"]["best_psnr"]
    reach = {name: time_to(arm["curve"], target) for name, arm in arms.items()}
    ratio = {
        name: (round(reach["pix2pix"] / reach[name], 2) if reach[name] and reach["pix2pix"] else None)
        for name in ("full_ft", "lora")
    }
    emit(
        {
            "bench": "time_to_quality",
            "concept": task.concept,
            "resolution": args.resolution,
            "budget_s": budget,
            "target_psnr": target,
            "seconds_to_target": reach,
            "speedup_vs_pix2pix": ratio,
            "best_psnr": {k: a["best_psnr"] for k, a in arms.items()},
            "trainable_params": {k: a["trainable_params"] for k, a in arms.items()},
            "images_per_s": {k: a["images_per_s"] for k, a in arms.items()},
            "lora_ranks": ranks,
            "curves": {k: a["curve"] for k, a in arms.items()},
        }
    )


if __name__ == "__main__":
    main()
