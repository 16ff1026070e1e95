"""The few lines `e2gan distill` ends with: quality, ranks, size, time per stage, where things are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.pipeline.progress import Console


def _interval(metrics: dict[str, Any]) -> tuple[float, float] | None:
    """The test PSNR's confidence interval, under whichever keys the evaluation wrote it."""
    for low, high in (("psnr_ci_low", "psnr_ci_high"), ("psnr_low", "psnr_high"), ("psnr_lo", "psnr_hi")):
        if isinstance(metrics.get(low), (int, float)) and isinstance(metrics.get(high), (int, float)):
            return float(metrics[low]), float(metrics[high])
    pair = metrics.get("psnr_ci")
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return float(pair[0]), float(pair[1])
    return None


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    return f"{n / 1024:.0f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def summary_lines(result: Any, console: Console, log_path: Path | None) -> list[str]:
    m = result.manifest
    metrics = m.metrics
    entry = result.entry
    head = f"{m.concept}: adapter {entry.version} published" if entry is not None else f"{m.concept}: adapter built (not published)"
    psnr = f"{float(metrics['psnr']):.2f} dB"
    ci = _interval(metrics)
    if ci is not None:
        psnr += f" (95% interval {ci[0]:.2f}–{ci[1]:.2f})"
    psnr += f", base alone {float(metrics['base_psnr']):.2f} dB; SSIM {float(metrics['ssim']):.3f}"
    ranks = ", ".join(f"{layer} {rank}" for layer, rank in m.ranks.items())
    seconds = " · ".join(f"{stage} {secs:.0f}" for stage, secs in console.stage_seconds.items())
    folder = Path(result.folder)
    lines = [
        head,
        f"  test PSNR  {psnr} on {m.spec.get('data', {}).get('heldOut', '?')} held-out pairs",
        f"  ranks      {ranks} ({f'{m.trainable_parameters:,}'.replace(',', ' ')} parameters)",
        f"  adapter    {_size(metrics.get('adapter_bytes'))} (adapter_model.safetensors)",
        f"  seconds    {seconds} · total {console.elapsed():.0f}",
    ]
    if entry is not None:
        lines.append(f"  published  {entry.uri}")
    lines.append(f"  adapter at {folder}")
    lines.append(f"  preview    {folder / 'preview.png'} (source | teacher | base | adapter)")
    if log_path is not None:
        lines.append(f"  logs       {log_path} (Ray, Tune, Data and worker output)")
    return lines
