"""Minimal data: what selecting sources before synthesis saves the teacher, beside the quality it
keeps. LoRA with 100 %, 40 % and 20 % of the training sources, chosen by k-means (nearest to the
centres of the base generator's bottleneck features) or at random.

Every arm trains the same ranks for the same number of steps from the same base at the same
learning rate; only the pairs differ. The teacher edits only the selected sources (plus the
held-out ones, the same for every arm), so an arm's teacher seconds are its pairs times the
measured seconds of one edit; the k-means arm is also charged its selection time. PSNR is on the
test split (nothing is tuned on it), median and spread over --repeats seeds.

    python bench/data_selection.py --quick [--teacher tiny-diffusion]
"""

from __future__ import annotations

import statistics
import time

import torch
from common import base, emit, held_out_psnr, load_task, parser  # type: ignore[import-not-found]

from trainers.data.select import random_subset, select_nearest_centres
from trainers.train.loop import fit
from trainers.train.lora import attach_lora


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="LoRA steps per arm (default 400, quick 120)")
    p.add_argument("--repeats", type=int, default=None, help="seeds per arm (default 3, quick 3)")
    args = p.parse_args()
    steps = args.steps or (120 if args.quick else 400)
    repeats = args.repeats or 3
    task = load_task(args)
    assert task.test is not None
    ranks = {"down": 2, "self_attn": 2, "cross_attn": 4, "mlp": 2, "up": 4}
    started = time.perf_counter()
    features = base(task).bottleneck_features(task.train.source, task.train.text)
    feature_seconds = time.perf_counter() - started
    held_out = len(task.held)
    arms: dict[str, dict] = {}
    for fraction in (1.0, 0.4, 0.2):
        for method in ("kmeans", "random") if fraction < 1 else ("all",):
            scores, pairs, selection = [], 0, []
            for r in range(repeats):
                seed = args.seed + r
                t0 = time.perf_counter()
                if method == "kmeans":
                    index = select_nearest_centres(features, fraction, seed=seed)
                elif method == "random":
                    index = random_subset(len(task.train), fraction, seed=seed)
                else:
                    index = list(range(len(task.train)))
                selection.append(time.perf_counter() - t0 + (feature_seconds if method == "kmeans" else 0.0))
                pairs = len(index)
                torch.manual_seed(seed)
                model = attach_lora(base(task), ranks)
                fit(model, task.train.subset(index), steps=steps, batch_size=8, lr=5e-3, seed=seed)
                scores.append(held_out_psnr(model, task.test))
            key = f"{method}_{int(fraction * 100)}" if method != "all" else "all_100"
            teacher_s = (pairs + held_out) * task.teacher_seconds_per_pair
            arms[key] = {
                "pairs": pairs,
                "test_psnr_median": round(statistics.median(scores), 3),
                "test_psnr_spread": [round(min(scores), 3), round(max(scores), 3)],
                "teacher_seconds": round(teacher_s, 3),
                "selection_seconds": round(statistics.median(selection), 3),
            }
            print(f"{key:12s} {pairs:4d} pairs  test PSNR {arms[key]['test_psnr_median']:.2f} dB "
                  f"{arms[key]['test_psnr_spread']}  teacher {teacher_s:.1f} s", flush=True)
    full = arms["all_100"]["teacher_seconds"]
    emit(
        {
            "bench": "data_selection",
            "concept": task.concept,
            "teacher": task.teacher_id,
            "teacher_seconds_per_pair": round(task.teacher_seconds_per_pair, 5),
            "steps": steps,
            "seeds": repeats,
            "held_out_pairs": held_out,
            "arms": arms,
            "teacher_seconds_saved_vs_all": {
                k: round(full - a["teacher_seconds"] - a["selection_seconds"], 3) for k, a in arms.items() if k != "all_100"
            },
            "kmeans_minus_random_db": {
                f: round(arms[f"kmeans_{f}"]["test_psnr_median"] - arms[f"random_{f}"]["test_psnr_median"], 3)
                for f in (40, 20)
            },
            "kmeans40_minus_all_db": round(arms["kmeans_40"]["test_psnr_median"] - arms["all_100"]["test_psnr_median"], 3),
        }
    )


if __name__ == "__main__":
    main()
