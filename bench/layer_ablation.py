"""Which layers are crucial, at matched trainable-parameter budgets: LoRA on one layer
group at a time (and on the residual blocks, which E2GAN leaves alone), each group's rank
chosen so its trainable parameters match the same budget, same steps, same pairs, 3 seeds.

Prints the test-split PSNR gain over the base per group (mean and spread over seeds);
`trainers/models/crucial.py` names the groups this justifies.

    python bench/layer_ablation.py --quick
"""

from __future__ import annotations

import statistics

import torch
from common import base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.models.crucial import CRUCIAL_LAYERS, RESIDUAL_LAYERS
from trainers.train.loop import fit
from trainers.train.lora import attach_lora, trainable_parameters
from trainers.train.objective import Objective


def rank_for(task, groups: dict, arm: list[str], budget: int) -> tuple[int, int]:
    """The rank whose trainable parameters come closest to `budget` (LoRA params are linear in rank)."""
    per_rank = trainable_parameters(attach_lora(base(task), dict.fromkeys(arm, 1), groups))
    rank = max(1, round(budget / per_rank))
    return rank, per_rank * rank


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="steps per arm (default 400, quick 120)")
    p.add_argument("--budget", type=int, default=None, help="trainable parameters per arm (default: all crucial layers at rank 2)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default 3, quick 1)")
    args = p.parse_args()
    steps = args.steps or (120 if args.quick else 400)
    seeds = args.seeds or (1 if args.quick else 3)
    task = load_task(args)
    groups = {**CRUCIAL_LAYERS, **RESIDUAL_LAYERS}
    budget = args.budget or trainable_parameters(attach_lora(base(task), dict.fromkeys(CRUCIAL_LAYERS, 2)))
    before = held_out_psnr(base(task), task.test)
    objective = Objective(ndf=32)
    rows = {}
    for arm in [[g] for g in groups] + [list(CRUCIAL_LAYERS)]:
        name = "+".join(arm) if len(arm) < len(CRUCIAL_LAYERS) else "all_crucial"
        rank, params = rank_for(task, groups, arm, budget)
        gains = []
        for seed in range(args.seed, args.seed + seeds):
            torch.manual_seed(seed)
            model = attach_lora(base(task), dict.fromkeys(arm, rank), groups)
            fit(model, task.train, steps=steps, batch_size=8, lr=5e-3, seed=seed, objective=objective)
            gains.append(held_out_psnr(model, task.test) - before)
        rows[name] = {"rank": rank, "params": params, "gain_db": round(statistics.mean(gains), 3),
                      "gain_db_spread": round(statistics.pstdev(gains), 3) if len(gains) > 1 else None,
                      "gains_db": [round(g, 3) for g in gains]}
        print(f"{name:12s} rank {rank:3d} {params:7d} params  +{rows[name]['gain_db']:.2f} dB", flush=True)
    emit({"bench": "layer_ablation", "concept": task.concept, "teacher": args.teacher, "budget_params": budget,
          "steps": steps, "seeds": seeds, "split": "test", "base_psnr": round(before, 3), "groups": rows})


if __name__ == "__main__":
    main()
