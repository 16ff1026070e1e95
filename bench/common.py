"""Shared set-up for the benchmarks: one concept's pairs, split, at a small resolution.

Every benchmark measures its arms side by side in one run, on the same pairs, and
ends by printing one JSON line; nothing here is asserted (numbers, not tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainers.data.convert import to_tensor  # noqa: E402
from trainers.data.pairs import PairStore  # noqa: E402
from trainers.evaluate.metrics import psnr  # noqa: E402
from trainers.models.weights import load_generator  # noqa: E402
from trainers.pipeline.base import BUILTIN_PROMPTS  # noqa: E402
from trainers.pipeline.resources import builtin_base_path  # noqa: E402
from trainers.sources import open_source  # noqa: E402
from trainers.teachers import ProceduralTeacher  # noqa: E402
from trainers.text import load_text_encoder  # noqa: E402
from trainers.train.loop import PairTensors, call_generator  # noqa: E402


@dataclass
class Task:
    concept: str
    train: PairTensors
    held: PairTensors  # validation + test together (older benchmarks)
    base_path: Path
    validation: PairTensors | None = None  # picks learning rates, ranks, convergence
    test: PairTensors | None = None  # the only source of reported figures
    teacher_seconds_per_pair: float = 0.0  # one uncached teacher edit, measured on training sources
    teacher_id: str = ""


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a shorter run (under 10 minutes on 2 CPU cores)")
    p.add_argument("--concept", default="pencil-sketch", help="a procedural concept (held out of the built-in base)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--held-out", type=int, default=32)
    p.add_argument("--base", type=Path, default=None, help="base weights (default: the built-in base)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--teacher", choices=["procedural", "tiny-diffusion"], default="procedural",
                   help="tiny-diffusion: a random-weight InstructPix2Pix (stochastic targets)")
    return p


def load_task(args: argparse.Namespace, cache: Path = Path("runs/bench-pairs")) -> Task:
    torch.set_num_threads(args.threads)
    base_path = args.base or builtin_base_path()
    text = load_text_encoder(None).encode([BUILTIN_PROMPTS.get(args.concept, args.concept)])[0]
    # Seed 10_000+: scenes the built-in base never saw.
    source = open_source("builtin://scenes", args.pairs + args.held_out, args.resolution, 10_000 + args.seed)
    store = PairStore(cache)
    teacher = ProceduralTeacher(args.concept)
    if getattr(args, "teacher", "procedural") == "tiny-diffusion":
        from e2gan_api.spec import TeacherSpec
        from trainers.teachers import build_teacher
        from trainers.teachers.tiny import build_tiny_pipeline

        folder = build_tiny_pipeline("instruct-pix2pix", cache.parent / "tiny-ip2p")
        teacher = build_teacher(TeacherSpec(kind="instruct-pix2pix", model=str(folder), steps=2), args.concept)
    keys = store.synthesize(source.images, source.hashes, teacher, args.concept, args.concept, progress=False)
    # What one pair costs the teacher (the pairs above may come from the cache): a timed batch, after a warm-up one.
    probe = source.images[: min(8, args.pairs)]
    teacher.edit(probe[:1], args.concept, 0)
    started = time.perf_counter()
    teacher.edit(probe, args.concept, list(range(len(probe))))
    seconds_per_pair = (time.perf_counter() - started) / len(probe)
    src, tgt = (to_tensor(a) for a in store.load(keys))
    texts = text.expand(len(src), -1).clone()
    n = args.held_out
    held = PairTensors(src[-n:], tgt[-n:], texts[-n:])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)).tolist()
    return Task(
        concept=args.concept,
        train=PairTensors(src[:-n], tgt[:-n], texts[:-n]),
        held=held,
        base_path=base_path,
        validation=held.subset(order[: n // 2]),
        test=held.subset(order[n // 2:]),
        teacher_seconds_per_pair=seconds_per_pair,
        teacher_id=getattr(teacher, "id", type(teacher).__name__),
    )


def base(task: Task) -> torch.nn.Module:
    return load_generator(task.base_path)


def held_out_psnr(model: torch.nn.Module, held: PairTensors, use_text: bool = True) -> float:
    model.eval()
    with torch.no_grad():
        out = call_generator(model, held.source, held.text if use_text else None)
    model.train()
    return psnr(out, held.target)


class Timer:
    """Training time only: evaluation pauses the clock."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._t = time.perf_counter()

    def pause(self) -> float:
        self.elapsed += time.perf_counter() - self._t
        return self.elapsed

    def resume(self) -> None:
        self._t = time.perf_counter()


def emit(result: dict) -> None:
    print(json.dumps(result, sort_keys=True), flush=True)
