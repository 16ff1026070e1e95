"""ONNX export of a merged concept generator (fp32 and fp16), verified in onnxruntime.

The adapter is merged into a copy of the base (peft `merge_and_unload`), the concept's
text embedding is baked in (`ConceptGenerator`), and the graph takes one input,
`image` [N, 3, H, W] in [-1, 1], with batch, height and width all dynamic (the
generator is fully convolutional; H and W must be multiples of 8). onnxruntime's output
is compared with torch's at two sizes before anything is published.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class ExportReport:
    onnx_bytes: int
    fp16_bytes: int | None
    max_abs_diff: float
    fp16_max_abs_diff: float | None
    parameters: int
    macs: int
    ort_cpu_latency_ms: float
    resolution: int

    def as_dict(self) -> dict:
        return asdict(self)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of (transposed) convolutions, Linear layers and attention matmuls."""
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() * k

    def deconv_hook(m: nn.ConvTranspose2d, inp, out) -> None:
        nonlocal total  # every input element scatters a Cout×k×k kernel
        total += inp[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups

    def linear_hook(m: nn.Linear, inp, out) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(deconv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif m.__class__.__name__ == "Attention":
            def attn_hook(mod, inp, out) -> None:
                nonlocal total
                x, ctx = inp
                total += 2 * x.shape[0] * x.shape[1] * ctx.shape[1] * x.shape[2]  # QKᵀ and AV

            hooks.append(m.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return int(total)


def export_onnx(model: nn.Module, path: Path, resolution: int) -> Path:
    """Export `model(image)`; batch, height and width are dynamic."""
    path = Path(path)
    example = torch.zeros(1, 3, resolution, resolution)
    model.eval()
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["edited"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "edited": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=17,
        dynamo=False,
    )
    return path


def to_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute, fp32 inputs/outputs (callers need not change)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


def ort_run(path: Path, image: np.ndarray, threads: int | None = None) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image.astype(np.float32)})[0]


def ort_latency_ms(path: Path, resolution: int, repeats: int = 20, threads: int | None = None) -> float:
    """Median onnxruntime CPU latency of one image."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, resolution, resolution)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"image": x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {"image": x})
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def verify_sizes(resolution: int) -> list[tuple[int, int]]:
    """The (height, width) the export is checked at: the training size and a non-square one."""
    return [(resolution, resolution), (resolution + 8, 2 * resolution)]


def _max_diff(path: Path, model: nn.Module, resolution: int) -> float:
    worst = 0.0
    for i, (h, w) in enumerate(verify_sizes(resolution)):
        x = torch.from_numpy(np.random.default_rng(1 + i).uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
        with torch.no_grad():
            expected = model(x).numpy()
        worst = max(worst, float(np.abs(ort_run(path, x.numpy()) - expected).max()))
    return worst


def export_and_verify(model: nn.Module, folder: Path, resolution: int, fp16: bool = True, tolerance: float = 1e-3) -> ExportReport:
    """model.onnx (and model_fp16.onnx) in `folder`; raise if onnxruntime disagrees with torch."""
    folder = Path(folder)
    path = export_onnx(model, folder / "model.onnx", resolution)
    diff = _max_diff(path, model, resolution)
    if diff > tolerance:
        raise RuntimeError(f"ONNX export disagrees with torch: max |diff| {diff:.2e} > {tolerance:.0e}")
    fp16_bytes = fp16_diff = None
    if fp16:
        half = to_fp16(path, folder / "model_fp16.onnx")
        fp16_bytes = half.stat().st_size
        fp16_diff = _max_diff(half, model, resolution)
        if fp16_diff > 0.1:  # fp16 drifts; a large error means a broken graph, not rounding
            raise RuntimeError(f"fp16 ONNX export disagrees with torch: max |diff| {fp16_diff:.3f}")
    x = torch.zeros(1, 3, resolution, resolution)
    return ExportReport(
        onnx_bytes=path.stat().st_size,
        fp16_bytes=fp16_bytes,
        max_abs_diff=diff,
        fp16_max_abs_diff=fp16_diff,
        parameters=sum(p.numel() for p in model.parameters()),
        macs=count_macs(model, x),
        ort_cpu_latency_ms=ort_latency_ms(path, resolution),
        resolution=resolution,
    )
