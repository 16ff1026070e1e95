"""Which layers are crucial: LoRA on one layer group at a time (and on the residual
blocks, which E2GAN leaves alone), same rank, same steps, same pairs.

Prints held-out PSNR gain over the base and the gain per 1 000 trainable parameters
for each group; `trainers/models/crucial.py` names the groups this justifies.

    python bench/layer_ablation.py --quick
"""

from __future__ import annotations

import torch
from common import base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.models.crucial import CRUCIAL_LAYERS, RESIDUAL_LAYERS
from trainers.train.loop import fit
from trainers.train.lora import attach_lora, trainable_parameters


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="steps per arm (default 400, quick 120)")
    p.add_argument("--rank", type=int, default=4)
    args = p.parse_args()
    steps = args.steps or (120 if args.quick else 400)
    task = load_task(args)
    before = held_out_psnr(base(task), task.held)
    groups = {**CRUCIAL_LAYERS, **RESIDUAL_LAYERS}
    rows = {}
    arms = [[g] for g in groups] + [list(CRUCIAL_LAYERS)]
    for arm in arms:
        torch.manual_seed(args.seed)
        model = attach_lora(base(task), dict.fromkeys(arm, args.rank), groups)
        params = trainable_parameters(model)
        fit(model, task.train, steps=steps, batch_size=8, lr=5e-3, seed=args.seed)
        gain = held_out_psnr(model, task.held) - before
        name = "+".join(arm) if len(arm) < len(CRUCIAL_LAYERS) else "all_crucial"
        rows[name] = {"params": params, "gain_db": round(gain, 3), "gain_db_per_1k_params": round(1000 * gain / params, 4)}
        print(f"{name:12s} {params:7d} params  +{gain:.2f} dB", flush=True)
    emit({"bench": "layer_ablation", "concept": task.concept, "rank": args.rank, "steps": steps,
          "base_psnr": round(before, 3), "groups": rows})


if __name__ == "__main__":
    main()
