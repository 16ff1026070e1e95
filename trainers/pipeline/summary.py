"""The few lines `e2gan distill` ends with: quality, ranks, size, time per stage, where things are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.pipeline.progress import Console


def _interval(metrics: dict[str, Any]) -> tuple[float, float] | None:
    """The test PSNR's bootstrap 95% interval, as the evaluation writes it (metrics.test.psnr_ci95)."""
    pair = (metrics.get("test") or {}).get("psnr_ci95")
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return float(pair[0]), float(pair[1])
    return None


def _fine_tune(record: dict | None, planned: Any) -> str | None:
    """How the fine-tune ended, when it checked the validation split."""
    if not record or not record.get("checks"):
        return None
    best = f"best check at step {record['best_step']} ({float(record['best']):.2f} dB validation)"
    if record.get("stopped_early"):
        return f"stopped at step {record['last_step']} of {planned} on a validation plateau; {best}"
    return f"{record['last_step']} steps; {best}"


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
    tested = (metrics.get("test") or {}).get("images", "?")
    lines = [
        head,
        f"  test PSNR  {psnr} on {tested} test pairs (photos no search or stop saw)",
        f"  ranks      {ranks} ({f'{m.trainable_parameters:,}'.replace(',', ' ')} parameters)",
        f"  adapter    {_size(metrics.get('adapter_bytes'))} (adapter_model.safetensors)",
        f"  seconds    {seconds} · total {console.elapsed():.0f}",
    ]
    ended = _fine_tune(m.fine_tune, m.spec.get("training", {}).get("steps", "?"))
    if ended:
        lines.insert(3, f"  fine-tune  {ended}")
    if entry is not None:
        lines.append(f"  published  {entry.uri}")
    lines.append(f"  adapter at {folder}")
    lines.append(f"  preview    {folder / 'preview.png'} (source | teacher | base | adapter)")
    if log_path is not None:
        lines.append(f"  logs       {log_path} (Ray, Tune, Data and worker output)")
    return lines
