"""Inference: the exported E2GAN student vs the pix2pix ResNet-9 generator in onnxruntime.

Both are exported the same way (fp32 ONNX, opset 17) at the same resolution and timed
alternately in one process, batch 1, on the CPU (the paper measured a phone: 15.5 vs
21.0 ms). Weights do not change latency, so random weights are used; fidelity comes from
bench/time_to_quality.py.

    python bench/inference.py --quick
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from common import emit  # type: ignore[import-not-found]

from trainers.export.onnx import count_macs, export_onnx
from trainers.models import ConceptGenerator, E2GANGenerator, GeneratorConfig, ResnetGenerator


def latencies(paths: dict[str, Path], resolution: int, rounds: int, threads: int) -> dict[str, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, resolution, resolution)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    import time

    for s in sessions.values():
        for _ in range(3):
            s.run(None, {"image": x})
    for _ in range(rounds):  # alternate so load changes hit both arms alike
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"image": x})
            times[k].append((time.perf_counter() - t) * 1000)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--width", type=int, default=32, help="student width (the built-in base uses 32)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    rounds = 15 if args.quick else 50
    torch.manual_seed(0)
    student = ConceptGenerator(E2GANGenerator(GeneratorConfig(width=args.width)).eval(), torch.randn(384)).eval()
    pix2pix = ResnetGenerator(ngf=64, n_blocks=9).eval()
    example = torch.zeros(1, 3, args.resolution, args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "e2gan": export_onnx(student, Path(tmp) / "e2gan.onnx", args.resolution),
            "pix2pix": export_onnx(pix2pix, Path(tmp) / "pix2pix.onnx", args.resolution),
        }
        ms = latencies(paths, args.resolution, rounds, args.threads)
    emit(
        {
            "bench": "inference",
            "resolution": args.resolution,
            "threads": args.threads,
            "latency_ms": {k: round(v, 2) for k, v in ms.items()},
            "speedup": round(ms["pix2pix"] / ms["e2gan"], 2),
            "params": {
                "e2gan": sum(p.numel() for p in student.parameters()),
                "pix2pix": sum(p.numel() for p in pix2pix.parameters()),
            },
            "gmacs": {
                "e2gan": round(count_macs(student, example) / 1e9, 2),
                "pix2pix": round(count_macs(pix2pix, example) / 1e9, 2),
            },
        }
    )


if __name__ == "__main__":
    main()
