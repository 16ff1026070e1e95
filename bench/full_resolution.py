"""What full-resolution editing costs: the built-in student at 256, 512 and 1024 px.

The generator is fully convolutional, but its transformer block attends over every
bottleneck position (H/8 x W/8 tokens), so self-attention grows with the fourth power of
the side while the convolutions grow with the square. This measures, in one run and one
process on the CPU (torch, batch 1), the forward latency, the multiply-accumulates, and
the share of both spent in the transformer block, at each side.

    python bench/full_resolution.py --quick
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import emit  # type: ignore[import-not-found]

from trainers.export.onnx import count_macs
from trainers.models import ConceptGenerator
from trainers.models.weights import load_generator
from trainers.pipeline.resources import builtin_base_path


def attention_macs(tokens: int, dim: int, context_tokens: int) -> int:
    """QK^T and AV of self-attention plus cross-attention (count_macs' own rule), per image."""
    return 2 * tokens * tokens * dim + 2 * tokens * context_tokens * dim


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (numbers are noisier)")
    p.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 10
    generator = load_generator(builtin_base_path())
    model = ConceptGenerator(generator, torch.randn(generator.config.text_dim)).eval()
    block_seconds: list[float] = []
    started: list[float] = []
    hooks = [
        generator.transformer.register_forward_pre_hook(lambda *_: started.append(time.perf_counter())),
        generator.transformer.register_forward_hook(lambda *_: block_seconds.append(time.perf_counter() - started[-1])),
    ]
    rows = {}
    dim = generator.config.width * 4
    for side in args.sides:
        x = torch.from_numpy(np.random.default_rng(side).uniform(-1, 1, (1, 3, side, side)).astype(np.float32))
        total: list[float] = []
        with torch.no_grad():
            model(x)  # warm-up
            block_seconds.clear()
            for _ in range(repeats):
                t = time.perf_counter()
                model(x)
                total.append(time.perf_counter() - t)
        tokens = (side // 8) ** 2
        macs = count_macs(model, x)
        rows[str(side)] = {
            "tokens": tokens,
            "latency_ms": round(1000 * float(np.median(total)), 1),
            "transformer_share_of_time": round(float(np.median(block_seconds)) / float(np.median(total)), 3),
            "gmacs": round(macs / 1e9, 2),
            "attention_share_of_macs": round(attention_macs(tokens, dim, generator.config.context_tokens) / macs, 3),
        }
    for h in hooks:
        h.remove()
    sides = [str(s) for s in args.sides]
    emit(
        {
            "bench": "full_resolution",
            "device": "cpu",
            "threads": args.threads,
            "width": generator.config.width,
            "sides": rows,
            "latency_ratio_last_vs_first": round(rows[sides[-1]]["latency_ms"] / rows[sides[0]]["latency_ms"], 1),
            "pixel_ratio_last_vs_first": (args.sides[-1] / args.sides[0]) ** 2,
        }
    )


if __name__ == "__main__":
    main()
