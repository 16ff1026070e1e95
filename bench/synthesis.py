"""Synthesis benchmark: the Ray Data path against a plain loop, on CPU and against the hardware on a GPU.

    .venv/bin/python bench/synthesis.py --part cpu          # CPU: tiny pipeline, ray_vs_raw and 1 vs 2 actors
    .venv/bin/python bench/synthesis.py --part gpu --quick  # GPU: one prepared command, under 8 min on an H200

CPU: a tiny random-weight InstructPix2Pix; the single-machine loop (PairStore.synthesize, one
thread) against synthesize_pairs with 1 and 2 one-CPU actors: `ray_vs_raw`, the scaling ratio
and the per-pair overhead Ray adds. GPU: an InstructPix2Pix with SD-1.5-sized parts built from
configs with random weights (timing does not depend on the weights), bf16, 20 steps, 3-way
guidance, at 256 px (batch 16) and 512 px (batch 8), eager and compiled. The raw arm is a
minimal hand-written diffusers loop (same pipeline and settings, no Ray, no writes); the Ray
arm is synthesize_pairs with 1 actor and, with several GPUs, one actor per GPU, pairs written
to a local store. Ratios use "steady" Ray figures (actor start-up, model load and compile
excluded: a fixed cost per run). Targets: Ray >= 0.9 of raw; compiled raw >= 29.7 pairs/s at
256 px on an H200 (anchors.md). The last line printed is one JSON object with every number.
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
    figures["ray_vs_raw"] = figures["ray_1_actor_vs_raw_steady"]
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


def raw_diffusers_loop(folder: Path, size: int, batch: int, batches: int, compile_mode: str) -> dict[str, Any]:
    """The hardware's reference: a minimal hand-written diffusers loop, no Ray, no stores.

    The same pipeline and settings as the teacher (bf16, channels_last, 20 steps, 3-way
    guidance, prompt embedded once, tensors in and uint8 out on the GPU, static shapes).
    """
    import diffusers
    import torch

    pipe = diffusers.StableDiffusionInstructPix2PixPipeline.from_pretrained(
        folder, dtype=torch.bfloat16, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if compile_mode != "off":
        pipe.unet = torch.compile(pipe.unet, mode=compile_mode, dynamic=False)
    tokens = pipe.tokenizer([PROMPT, ""], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        text = pipe.text_encoder(tokens.input_ids.cuda())[0]
    images = torch.rand(batch, 3, size, size, device="cuda")

    def one_batch(seed: int) -> Any:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)]
        with torch.inference_mode():
            out = pipe(
                prompt_embeds=text[:1].expand(batch, -1, -1),
                negative_prompt_embeds=text[1:].expand(batch, -1, -1),
                image=images,
                num_inference_steps=20,
                guidance_scale=7.5,
                image_guidance_scale=1.5,
                generator=generators,
                output_type="pt",
            ).images
            return (out.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()

    started = time.perf_counter()
    one_batch(0)  # warm-up: kernels picked, UNet compiled
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - started
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for b in range(batches):
        one_batch(1000 * (b + 1))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated()
    return {
        "pairs": batch * batches,
        "seconds": round(seconds, 3),
        "warmup_s": round(warmup_s, 1),
        "pairs_per_s": round(batch * batches / seconds, 3),
        "seconds_per_batch": round(seconds / batches, 4),
        "peak_gpu_gib": round(peak / GIB, 2),
    }


def gpu_part(quick: bool, compile_modes: list[str], sizes: list[int], work: Path) -> dict[str, Any]:
    """Raw loop vs the Ray path per (size, compile), with 1 actor and (with >1 GPU) one per GPU."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA"}
    folder = build_sd15_sized_ip2p(work / "sd15-ip2p")
    gpus = torch.cuda.device_count()
    batch_for = {256: 16, 512: 8}
    batches = 4 if quick else 8
    figures: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "gpus": gpus, "torch": torch.__version__}
    runs = []
    with ray_cluster(num_gpus=gpus):
        for size in sizes:
            for mode in compile_modes:
                batch = batch_for.get(size, 8)
                raw = raw_diffusers_loop(folder, size, batch, batches, mode)
                torch.cuda.empty_cache()  # the raw pipeline is gone: give its memory to the actor
                spec = TeacherSpec(
                    kind="instruct-pix2pix", model=str(folder), steps=20, batch_size=batch,
                    dtype="bf16", compile=mode, resolution=size,
                )
                run: dict[str, Any] = {"size": size, "batch": batch, "steps": 20, "compile": mode, "raw": raw}
                for actors in sorted({1, gpus}):
                    sources = open_source("builtin://scenes", batches * batch * actors, size, seed=size + actors)
                    report = synthesize_pairs(
                        teacher_spec=spec, concept=CONCEPT, prompt=PROMPT, sources=sources,
                        store=work / f"gpu-{size}-{mode}-{actors}", actors=actors, gpus_per_actor=1,
                        cpus_per_actor=1,
                    )
                    ray = ray_figures(report)
                    run[f"ray_{actors}_actor"] = ray
                    run[f"ray_{actors}_actor_pairs_per_s_per_gpu"] = round(ray["steady_pairs_per_s"] / actors, 3)
                    run[f"ray_{actors}_actor_vs_raw"] = round(ray["steady_pairs_per_s"] / actors / raw["pairs_per_s"], 3)
                anchor = ANCHOR_COMPILED_256 if mode != "off" and size == 256 else ANCHOR_PAIRS_PER_S.get(size)
                run["anchor_pairs_per_s"] = anchor
                run["target_ray_ge_0.9_raw"] = run["ray_1_actor_vs_raw"] >= 0.9
                if mode != "off" and size == 256:
                    run["target_raw_ge_29.7"] = raw["pairs_per_s"] >= ANCHOR_COMPILED_256
                print(f"[bench] gpu {json.dumps(run)}", flush=True)
                runs.append(run)
    figures["runs"] = runs
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs")
    parser.add_argument("--part", choices=["cpu", "gpu", "all"], default="all")
    parser.add_argument(
        "--compile", nargs="*", default=["off", "default"], choices=["off", "default", "max-autotune"],
        help="GPU: torch.compile modes to run (off = eager)",
    )
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 512], help="GPU: resolutions")
    args = parser.parse_args()
    results: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="bench-synthesis-") as tmp:
        work = Path(tmp)
        if args.part in ("cpu", "all"):
            results["cpu"] = cpu_part(args.quick, work)
            print(f"[bench] cpu {json.dumps(results['cpu'])}", flush=True)
        if args.part in ("gpu", "all"):
            results["gpu"] = gpu_part(args.quick, args.compile, args.sizes, work)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
