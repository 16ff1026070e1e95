"""Turn the job's progress object and its published result into status fields (pure functions).

The progress object is written by the trainer (`trainers/pipeline/progress.py`): stage,
percent, trialsDone, trialsTotal, bestRanks, message and, once published, `result` (the
catalog index entry). It is data from a job, so every field is checked and clipped here
before it reaches the status schema.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from e2gan_api.status import STAGE_PATTERN

MAX_MESSAGE = 1024
# Metrics that express fidelity, best first, and how to print them in the Fidelity column.
FIDELITY_KEYS = (("psnr", "{:.2f} dB"), ("psnr_db", "{:.2f} dB"), ("ssim", "SSIM {:.3f}"))
_STAGE = re.compile(STAGE_PATTERN)


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return min(max(value, low), high)


def _text(value: Any, limit: int = MAX_MESSAGE) -> str:
    text = value if isinstance(value, str) else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ranks(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, int] = {}
    for layer, rank in list(value.items())[:256]:
        r = _number(rank, 0, 4096)
        if isinstance(layer, str) and r is not None and len(layer) <= 253:
            out[layer] = int(r)
    return out


def stage_of(progress: dict[str, Any] | None, default: str) -> str:
    stage = progress.get("stage") if isinstance(progress, dict) else None
    return stage if isinstance(stage, str) and len(stage) <= 32 and _STAGE.match(stage) else default


def progress_status(progress: dict[str, Any] | None) -> dict[str, Any]:
    """`status.progress` from the job's progress object (empty progress before it writes one)."""
    p = progress if isinstance(progress, dict) else {}
    done = _number(p.get("trialsDone"), 0, 100_000)
    total = _number(p.get("trialsTotal"), 0, 100_000)
    return {
        "percent": round(_number(p.get("percent"), 0, 100) or 0.0, 1),
        "trialsDone": int(done or 0),
        "trialsTotal": int(total or 0),
        "bestRanks": _ranks(p.get("bestRanks")),
        "message": _text(p.get("message")),
    }


def trials_column(progress: dict[str, Any]) -> str:
    total = progress.get("trialsTotal") or 0
    return f"{progress.get('trialsDone') or 0}/{total}" if total else ""


def ranks_column(ranks: dict[str, int]) -> str:
    """Ranks in layer order when short ("8/4/4/2"), else a histogram ("2x10,4x3,8x1")."""
    if not ranks:
        return ""
    ordered = "/".join(str(ranks[k]) for k in sorted(ranks))
    if len(ordered) <= 40:
        return ordered
    counts: dict[int, int] = {}
    for r in ranks.values():
        counts[r] = counts.get(r, 0) + 1
    return _text(",".join(f"{r}x{n}" for r, n in sorted(counts.items())), 128)


def numeric_metrics(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for key, value in list(metrics.items())[:64]:
        number = _number(value, -1e12, 1e12)
        if isinstance(key, str) and len(key) <= 63 and number is not None:
            out[key] = number
    return out


def fidelity_column(metrics: dict[str, float]) -> str:
    for key, fmt in FIDELITY_KEYS:
        if key in metrics:
            return fmt.format(metrics[key])
    return ""


@dataclass(frozen=True)
class Result:
    """What the job says it published."""

    uri: str
    version: str
    digest: str
    base_digest: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)


def result_of(progress: dict[str, Any] | None) -> Result | None:
    """The published result in a progress object (camelCase or snake_case keys), or None."""
    raw = progress.get("result") if isinstance(progress, dict) else None
    if not isinstance(raw, dict):
        return None
    version = raw.get("version")
    uri = raw.get("uri")
    if not isinstance(version, str | int) or not isinstance(uri, str) or not uri:
        return None
    base = raw.get("baseModelDigest", raw.get("base_model_digest", raw.get("baseDigest", "")))
    return Result(
        uri=_text(uri, 2048),
        version=_text(str(version), 64),
        digest=_text(raw.get("digest"), 128),
        base_digest=_text(base, 128),
        metrics=numeric_metrics(raw.get("metrics")),
        ranks=_ranks(raw.get("ranks")),
    )
