"""Does ASHA kill cheap rank patterns for a slow start? A measurement to size its grace period.

Every candidate pattern of the search trains for the full trial length (no early
stopping); its validation PSNR is recorded at every step count ASHA could use as a first
rung. For each grace fraction, the patterns ASHA (reduction factor 2) would stop at the
first rung are those in the bottom half there; the question is whether the pattern the
full-length search chooses (cheapest within tolerance of the best) is among them, and
how well the rung's ranking agrees with the final one (Spearman). `run_search` uses the
fraction this supports (README, "Search noise").

    python bench/asha_fairness.py --quick
"""

from __future__ import annotations

import torch
from common import base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.train.loop import fit
from trainers.train.lora import attach_lora, trainable_parameters
from trainers.train.objective import Objective
from trainers.train.patterns import candidate_patterns, choose


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="trial length (default 80, as the embedded default)")
    p.add_argument("--trials", type=int, default=None, help="patterns (default 8, quick 6)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default 3, quick 1)")
    args = p.parse_args()
    steps = args.steps or 80
    trials = args.trials or (6 if args.quick else 8)
    seeds = args.seeds or (1 if args.quick else 3)
    fractions = [0.25, 0.5]
    rungs = sorted({max(1, int(steps * f)) for f in fractions})
    out: dict[str, dict] = {str(f): {"chosen_stopped": 0, "spearman": []} for f in fractions}
    task = load_task(args)
    for seed in range(args.seed, args.seed + seeds):
        records = []
        for pattern in candidate_patterns([1, 2, 4], trials, seed):
            torch.manual_seed(seed)
            model = attach_lora(base(task), pattern)
            scores: dict[int, float] = {}

            def on_step(step: int, loss: float, model=model, scores=scores) -> None:
                if step in rungs:
                    scores[step] = held_out_psnr(model, task.validation)

            fit(model, task.train, steps=steps, batch_size=8, lr=5e-3, seed=seed, objective=Objective(ndf=32),
                on_step=on_step)
            records.append({"ranks": pattern, "psnr": held_out_psnr(model, task.validation),
                            "trainable_params": trainable_parameters(model), "rungs": scores})
        chosen = choose(records, 0.25)
        for f in fractions:
            rung = max(1, int(steps * f))
            early = [r["rungs"][rung] for r in records]
            cut = sorted(early)[len(early) // 2]  # ASHA keeps the top half (reduction factor 2)
            stopped = [r for r in records if r["rungs"][rung] < cut]
            out[str(f)]["chosen_stopped"] += int(any(r is chosen for r in stopped))
            out[str(f)]["spearman"].append(round(spearman(early, [r["psnr"] for r in records]), 3))
    emit({"bench": "asha_fairness", "steps": steps, "trials": trials, "seeds": seeds, "grace_fractions": out})


if __name__ == "__main__":
    main()
