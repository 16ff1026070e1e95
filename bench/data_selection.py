"""Minimal data: LoRA quality with 100%, 40% and 20% of the pairs, chosen by k-means
(nearest to the centres of the base generator's bottleneck features) vs at random.

Every arm trains the same ranks for the same number of steps from the same base; only
the pairs differ. Held-out PSNR is averaged over --repeats seeds.

    python bench/data_selection.py --quick
"""

from __future__ import annotations

import statistics

import torch
from common import base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.data.select import random_subset, select_nearest_centres
from trainers.train.loop import fit
from trainers.train.lora import attach_lora


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="LoRA steps per arm (default 400, quick 120)")
    p.add_argument("--repeats", type=int, default=None, help="seeds per arm (default 3, quick 1)")
    args = p.parse_args()
    steps = args.steps or (120 if args.quick else 400)
    repeats = args.repeats or (1 if args.quick else 3)
    task = load_task(args)
    ranks = {"down": 2, "self_attn": 2, "cross_attn": 4, "mlp": 2, "up": 4}
    features = base(task).bottleneck_features(task.train.source, task.train.text)
    results: dict[str, float] = {}
    for fraction in (1.0, 0.4, 0.2):
        for method in ("kmeans", "random") if fraction < 1 else ("all",):
            scores = []
            for r in range(repeats):
                seed = args.seed + r
                if method == "kmeans":
                    index = select_nearest_centres(features, fraction, seed=seed)
                elif method == "random":
                    index = random_subset(len(task.train), fraction, seed=seed)
                else:
                    index = list(range(len(task.train)))
                torch.manual_seed(seed)
                model = attach_lora(base(task), ranks)
                fit(model, task.train.subset(index), steps=steps, batch_size=8, lr=5e-3, seed=seed)
                scores.append(held_out_psnr(model, task.held))
            key = f"{method}_{int(fraction * 100)}" if method != "all" else "all_100"
            results[key] = round(statistics.mean(scores), 3)
            print(f"{key:12s} {len(index):4d} pairs  PSNR {results[key]:.2f} dB", flush=True)
    emit(
        {
            "bench": "data_selection",
            "concept": task.concept,
            "steps": steps,
            "repeats": repeats,
            "psnr": results,
            "kmeans_minus_random_db": {
                f: round(results[f"kmeans_{f}"] - results[f"random_{f}"], 3) for f in (40, 20)
            },
            "kmeans40_minus_all_db": round(results["kmeans_40"] - results["all_100"], 3),
        }
    )


if __name__ == "__main__":
    main()
