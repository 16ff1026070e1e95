"""One-go GPU check: is every part of training on the GPU, and how fast is it?

On one CUDA GPU (target: under 8 minutes):
1. a base-training burst at 256 px with the full-size student (width 64) against the
   70×70 PatchGAN, bf16 autocast, channels_last, with forward pre-hooks asserting that
   every parameter and every input of the generator and the discriminator is on CUDA;
   it reports training images/s for all weights and for LoRA (r=8 on the transformer and
   up-sampling layers). Anchors measured on an H200: 648 and 690 img/s at batch 32.
2. a full `distill` at 256 px from that base with a tiny random-weight InstructPix2Pix
   teacher, its rank-search trials sharing the GPU through fractional GPU resources
   (search.gpusPerTrial); it reports the device every trial trained on and trials per GPU.

Without CUDA it prints {"bench": "gpu_check", "cuda": false, ...} and exits 0.

    python bench/gpu_check.py [--steps 30] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def emit(result: dict) -> None:
    print(json.dumps(result, sort_keys=True), flush=True)


def assert_on_cuda(module: torch.nn.Module, name: str) -> list:
    """Forward pre-hooks on `module` and every submodule: parameters and inputs on CUDA."""

    def check(mod: torch.nn.Module, args: tuple) -> None:
        for p in mod.parameters(recurse=False):
            assert p.is_cuda, f"{name}: parameter of {type(mod).__name__} on {p.device}"
        for a in args:
            if isinstance(a, torch.Tensor):
                assert a.is_cuda, f"{name}: input of {type(mod).__name__} on {a.device}"

    return [m.register_forward_pre_hook(check) for m in module.modules()]


def throughput(model, data, objective, steps: int, batch_size: int, gan) -> float:
    from trainers.train.loop import fit

    fit(model, data, steps=3, batch_size=batch_size, lr=2e-4, objective=objective, gan=gan)  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    fit(model, data, steps=steps, batch_size=batch_size, lr=2e-4, objective=objective, gan=gan)
    torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per throughput arm")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--pairs", type=int, default=64, help="pairs the distill synthesizes")
    args = p.parse_args()
    if not torch.cuda.is_available():
        emit({"bench": "gpu_check", "cuda": False, "ran": False,
              "reason": "no CUDA device: nothing measured (this script has not run on a GPU yet)"})
        return 0

    from trainers.models.generator import E2GANGenerator, GeneratorConfig
    from trainers.models.weights import discriminator_path, save_discriminator, save_generator
    from trainers.train.loop import PairTensors, new_gan_parts
    from trainers.train.lora import attach_lora
    from trainers.train.objective import Objective, new_discriminator, place

    device = torch.device("cuda")
    started = time.perf_counter()
    res, n = args.resolution, max(args.batch_size * 2, 64)
    x = torch.rand(n, 3, res, res) * 2 - 1
    data = PairTensors(x, x.flip(1), torch.randn(n, 384))
    objective = Objective()  # λ=100 L1 + LSGAN, 70×70 PatchGAN at 256 px

    # 1. Base-training burst: all weights, then LoRA, every module asserting CUDA placement.
    full = place(E2GANGenerator(GeneratorConfig(width=args.width)), device)
    disc = place(new_discriminator(objective, res), device)
    hooks = assert_on_cuda(full, "generator") + assert_on_cuda(disc, "discriminator")
    gan = new_gan_parts(disc, objective.discriminator_lr)
    torch.cuda.reset_peak_memory_stats()
    full_ips = throughput(full, data, objective, args.steps, args.batch_size, gan)
    full_mem = torch.cuda.max_memory_allocated() / 2**30
    lora = attach_lora(full.eval(), {"self_attn": 8, "cross_attn": 8, "mlp": 8, "up": 8})
    hooks += assert_on_cuda(lora, "lora generator")
    torch.cuda.reset_peak_memory_stats()
    lora_ips = throughput(lora, data, objective, args.steps, args.batch_size, gan)
    lora_mem = torch.cuda.max_memory_allocated() / 2**30
    for h in hooks:
        h.remove()

    # 2. A full distill at 256 px from that base, with a tiny diffusers teacher.
    from e2gan_api.spec import ConceptAdapterSpec
    from trainers.pipeline.distill import distill
    from trainers.teachers.tiny import build_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="e2gan-gpu-check-"))
    base_path = save_generator(full.cpu().eval(), work / "base.safetensors")
    save_discriminator(disc.cpu(), discriminator_path(base_path), extra={"resolution": str(res)})
    teacher = build_tiny_pipeline("instruct-pix2pix", work / "ip2p")
    spec = ConceptAdapterSpec.model_validate({
        "concept": "gpu-check", "prompt": "turn the photo into a pencil sketch",
        "base": {"weights": str(base_path)},
        "teacher": {"kind": "instruct-pix2pix", "model": str(teacher), "steps": 4, "batchSize": 16, "dtype": "bf16"},
        "data": {"pairs": args.pairs, "heldOut": 16, "keepFraction": 1.0},
        "search": {"ranks": [2, 4, 8], "trials": 8, "parallelTrials": 8, "steps": 40, "earlyStopping": True},
        "training": {"resolution": res, "steps": 200, "batchSize": args.batch_size, "learningRate": 2e-3},
        "resources": {"workers": 1, "gpusPerWorker": 1, "cpusPerWorker": 8},
        "export": {"onnx": True, "fp16": True},
    })
    distill_started = time.perf_counter()
    result = distill(spec, catalog_uri=str(work / "catalog"), work_dir=work / "job", publish=False)
    search = json.loads((result.folder / "search.json").read_text())
    devices = sorted({t.get("device") or "?" for t in search["trials"]})
    from trainers.pipeline.resources import gpus_per_trial

    emit({
        "bench": "gpu_check",
        "cuda": True,
        "gpu": torch.cuda.get_device_name(0),
        "resolution": res,
        "batch_size": args.batch_size,
        "width": args.width,
        "train_images_per_s": {"full": round(full_ips, 1), "lora": round(lora_ips, 1)},
        "peak_gib": {"full": round(full_mem, 2), "lora": round(lora_mem, 2)},
        "anchors_h200_images_per_s": {"full": 648, "lora": 690},
        "placement_hooks": "passed",
        "trial_devices": devices,
        "trials_per_gpu": round(1 / gpus_per_trial(spec), 2),
        "trials": len(search["trials"]),
        "distill_seconds": round(time.perf_counter() - distill_started, 1),
        "test_psnr": result.manifest.metrics.get("psnr"),
        "total_seconds": round(time.perf_counter() - started, 1),
    })
    return 0 if devices == ["cuda"] else 1


if __name__ == "__main__":
    sys.exit(main())
