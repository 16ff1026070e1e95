"""Synthesis benchmark: what Ray adds on top of a plain teacher loop, on CPU and on a GPU.

    .venv/bin/python bench/synthesis.py            # CPU part, then the GPU part when CUDA is present
    .venv/bin/python bench/synthesis.py --quick    # fewer pairs (CPU < 2 min; GPU < 4 min on an H200)
    .venv/bin/python bench/synthesis.py --part gpu --compile   # add the channels_last + torch.compile run

CPU: a tiny random-weight InstructPix2Pix; the single-machine loop (PairStore.synthesize, one
thread) against synthesize_pairs with 1 and 2 one-CPU actors: the scaling ratio and the
per-pair overhead Ray adds. GPU: an InstructPix2Pix with SD-1.5-sized parts built from
configs with random weights (timing does not depend on the weights), fp16, 20 steps, 3-way
guidance, at 256 px (batch 16) and 512 px (batch 8); the raw loop (the same teacher's edit()
in a plain loop, no Ray, no writes) against synthesize_pairs with one actor on the GPU, pairs
written to a local store. "steady" figures exclude actor start-up and model load (a fixed
cost per run, not per pair). The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Before `import ray`: every Ray listener on 127.0.0.1, no auth token files.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2gan_api.spec import TeacherSpec  # noqa: E402
from trainers.data import PairStore  # noqa: E402
from trainers.sources import SourceImages, open_source  # noqa: E402
from trainers.synthesis import SynthesisReport, synthesize_pairs  # noqa: E402
from trainers.teachers import build_teacher  # noqa: E402
from trainers.text.hub import prepare_offline  # noqa: E402

PROMPT = "make it winter"
CONCEPT = "winter"
# anchors.md: the raw fp16 loop measured on an H200 (eager; the compiled run gave 29.7 at 256 px).
ANCHOR_PAIRS_PER_S = {256: 19.6, 512: 4.96}
ANCHOR_COMPILED_256 = 29.7
GIB = 1 << 30


@contextmanager
def ray_cluster(num_gpus: int) -> Iterator[None]:
    """A local Ray on loopback with every CPU (and the GPUs asked for); quiet Ray Data."""
    import ray
    from ray.data import DataContext

    ray.init(
        num_cpus=os.cpu_count() or 2,
        num_gpus=num_gpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=int(os.environ.get("E2GAN_RAY_OBJECT_STORE_BYTES", 1 << 30)),
        logging_level="WARNING",
        log_to_driver=False,
    )
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.wait_for_min_actors_s = 600  # dispatch once every actor is up: a fair steady window
    try:
        yield
    finally:
        ray.shutdown()


def ray_figures(report: SynthesisReport) -> dict[str, Any]:
    busy = sum(w.busy_s for w in report.workers.values())
    # Time actors spent outside teacher calls within the steady window: Ray's own per-chunk cost.
    idle = max(0.0, report.actors * report.steady_seconds - busy)
    return {
        "actors": report.actors,
        "teacher_busy_s": round(busy, 3),
        "actor_idle_fraction": round(idle / (report.actors * report.steady_seconds), 4),
        "actor_idle_ms_per_pair": round(1000 * idle / max(1, report.made), 2),
        "pairs": report.made,
        "wall_s": round(report.seconds, 3),
        "steady_s": round(report.steady_seconds, 3),
        "pairs_per_s": round(report.pairs_per_s, 3),
        "steady_pairs_per_s": round(report.steady_pairs_per_s, 3),
        "startup_s": round(report.seconds - report.steady_seconds, 3),
        "writer_busy_s": round(report.writer_busy_s, 3),
        "workers": {k: w.to_dict() for k, w in report.workers.items()},
    }


# -- CPU ---------------------------------------------------------------------------------------


def raw_cpu_loop(spec: TeacherSpec, sources: SourceImages, store: Path) -> float:
    """Seconds of the single-machine unit (PairStore.synthesize: teacher plus PNG writes), one
    thread, after loading the model. Runs as a Ray task so it gets the same process priority as
    the actors (Ray workers run at nice 15; on a shared machine that alone halves their speed)."""
    import torch

    torch.set_num_threads(1)
    teacher = build_teacher(spec, CONCEPT, device="cpu")
    getattr(teacher, "pipeline", None)  # load outside the timing, as the actors do
    started = time.perf_counter()
    PairStore(store).synthesize(
        sources.images, sources.hashes, teacher, PROMPT, CONCEPT, batch_size=spec.batch_size, progress=False
    )
    return time.perf_counter() - started


def cpu_part(quick: bool, work: Path) -> dict[str, Any]:
    import ray

    from trainers.teachers.tiny import build_tiny_pipeline

    n, size, steps, batch = (16, 96, 6, 4) if quick else (48, 128, 8, 4)
    folder = build_tiny_pipeline("instruct-pix2pix", work / "tiny-ip2p")
    spec = TeacherSpec(kind="instruct-pix2pix", model=str(folder), steps=steps, batch_size=batch)
    sources = open_source("builtin://scenes", n, size, seed=0)
    figures: dict[str, Any] = {
        "setup": {"pairs": n, "size": size, "steps": steps, "batch": batch, "cpus": os.cpu_count()}
    }
    with ray_cluster(num_gpus=0):
        raw_task = ray.remote(num_cpus=1)(raw_cpu_loop)
        raw_s = ray.get(raw_task.remote(spec, sources, work / "cpu-raw"))
        figures["raw"] = {"seconds": round(raw_s, 3), "pairs_per_s": round(n / raw_s, 3)}
        for actors in (1, 2):
            report = synthesize_pairs(
                teacher_spec=spec,
                concept=CONCEPT,
                prompt=PROMPT,
                sources=sources,
                store=work / f"cpu-ray{actors}",
                actors=actors,
                cpus_per_actor=1,
            )
            figures[f"ray_{actors}_actor"] = ray_figures(report)
        # Again at the end: on a shared machine the difference between the two is the noise.
        again_s = ray.get(raw_task.remote(spec, sources, work / "cpu-raw-again"))
        figures["raw_again"] = {"seconds": round(again_s, 3), "pairs_per_s": round(n / again_s, 3)}
    raw_s = (raw_s + again_s) / 2
    one, two = figures["ray_1_actor"], figures["ray_2_actor"]
    figures["scaling_2_vs_1_steady"] = round(two["steady_pairs_per_s"] / one["steady_pairs_per_s"], 3)
    figures["scaling_2_vs_1_wall"] = round(two["pairs_per_s"] / one["pairs_per_s"], 3)
    figures["ray_overhead_ms_per_pair_steady"] = round(1000 * (one["steady_s"] - raw_s) / n, 2)
    figures["ray_overhead_ms_per_pair_wall"] = round(1000 * (one["wall_s"] - raw_s) / n, 2)
    figures["ray_1_actor_vs_raw_steady"] = round(one["steady_pairs_per_s"] * raw_s / n, 3)
    return figures


# -- GPU ---------------------------------------------------------------------------------------


def build_sd15_sized_ip2p(folder: Path, device: str = "cuda") -> Path:
    """An InstructPix2Pix folder with SD-1.5-sized UNet (in_channels 8), VAE and CLIP text model.

    Random fp16 weights, built on the GPU by default (a CPU init of 1 B parameters takes minutes), saved with
    save_pretrained so DiffusionTeacher loads it by path exactly like a real checkpoint.
    """
    prepare_offline()
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from trainers.text.tiny import build_tiny_clip_tokenizer, save_tiny_clip_tokenizer

    tokenizer = build_tiny_clip_tokenizer()  # token ids only; sequence length 77 as in SD
    torch.manual_seed(0)
    with torch.device(device):
        unet = diffusers.UNet2DConditionModel(
            sample_size=64,
            in_channels=8,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        vae = diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                projection_dim=768,
                bos_token_id=len(tokenizer) - 2,
                eos_token_id=len(tokenizer) - 1,
                pad_token_id=len(tokenizer) - 1,
            )
        )
    scheduler = diffusers.EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = diffusers.StableDiffusionInstructPix2PixPipeline(
        vae=vae.half().eval(),
        text_encoder=text_encoder.half().eval(),
        tokenizer=tokenizer,
        unet=unet.half().eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    save_tiny_clip_tokenizer(folder / "tokenizer")
    params = sum(p.numel() for p in unet.parameters())
    del pipe, unet, vae, text_encoder
    torch.cuda.empty_cache()
    print(
        f"[bench] SD-1.5-sized InstructPix2Pix: UNet {params / 1e6:.1f} M parameters -> {folder}", flush=True
    )
    return folder


def raw_loop(spec: TeacherSpec, sources: SourceImages) -> dict[str, Any]:
    """The teacher's own edit() over the same chunks in this process: no Ray, no writes."""
    import torch

    teacher = build_teacher(spec, CONCEPT, device="cuda")
    b = spec.batch_size
    teacher.edit(sources.images[:b], PROMPT, list(range(b)))  # load, pick kernels (and compile)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for start in range(0, len(sources), b):
        teacher.edit(sources.images[start : start + b], PROMPT, list(range(start, start + b)))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated()
    del teacher
    torch.cuda.empty_cache()
    return {
        "pairs": len(sources),
        "seconds": round(seconds, 3),
        "pairs_per_s": round(len(sources) / seconds, 3),
        "seconds_per_batch": round(seconds * b / len(sources), 4),
        "peak_gpu_gib": round(peak / GIB, 2),
    }


def gpu_part(quick: bool, compile_too: bool, work: Path) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA"}
    folder = build_sd15_sized_ip2p(work / "sd15-ip2p")
    settings = [(256, 16, False), (512, 8, False)] + ([(256, 16, True)] if compile_too else [])
    batches = 6 if quick else 12
    figures: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    runs = []
    for size, batch, compiled in settings:
        spec = TeacherSpec(
            kind="instruct-pix2pix",
            model=str(folder),
            steps=20,
            batch_size=batch,
            dtype="fp16",
            compile=compiled,
        )
        sources = open_source("builtin://scenes", batches * batch, size, seed=size)
        raw = raw_loop(spec, sources)
        with ray_cluster(num_gpus=torch.cuda.device_count()):
            report = synthesize_pairs(
                teacher_spec=spec,
                concept=CONCEPT,
                prompt=PROMPT,
                sources=sources,
                store=work / f"gpu-{size}-{'compiled' if compiled else 'eager'}",
                actors=1,
                gpus_per_actor=1,
                cpus_per_actor=1,
            )
        ray = ray_figures(report)
        peaks = [w.gpu_peak_bytes for w in report.workers.values() if w.gpu_peak_bytes]
        anchor = ANCHOR_COMPILED_256 if compiled else ANCHOR_PAIRS_PER_S[size]
        run = {
            "size": size,
            "batch": batch,
            "steps": 20,
            "compile": compiled,
            "raw": raw,
            "ray": ray,
            "ray_actor_peak_gpu_gib": round(max(peaks) / GIB, 2) if peaks else None,
            "ray_vs_raw_steady": round(ray["steady_pairs_per_s"] / raw["pairs_per_s"], 3),
            "ray_vs_raw_wall": round(ray["pairs_per_s"] / raw["pairs_per_s"], 3),
            "anchor_pairs_per_s": anchor,
            "ray_vs_anchor_steady": round(ray["steady_pairs_per_s"] / anchor, 3),
            "target_met": ray["steady_pairs_per_s"] >= 0.9 * raw["pairs_per_s"],
        }
        print(f"[bench] gpu {json.dumps(run)}", flush=True)
        runs.append(run)
    figures["runs"] = runs
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs")
    parser.add_argument("--part", choices=["cpu", "gpu", "all"], default="all")
    parser.add_argument(
        "--compile", action="store_true", help="GPU: also channels_last + torch.compile at 256 px"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="bench-synthesis-") as tmp:
        work = Path(tmp)
        if args.part in ("cpu", "all"):
            results["cpu"] = cpu_part(args.quick, work)
            print(f"[bench] cpu {json.dumps(results['cpu'])}", flush=True)
        if args.part in ("gpu", "all"):
            results["gpu"] = gpu_part(args.quick, args.compile, work)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
