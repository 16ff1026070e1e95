"""What a synthesis run did: counts, skips and throughput per worker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from catalog.settings import S3Settings


@dataclass
class WorkerStats:
    """One teacher actor (its Ray actor id survives restarts; pids tell restarts apart)."""

    worker: str
    pairs: int = 0  # pairs this actor's teacher made
    chunks: int = 0
    busy_s: float = 0.0  # seconds inside teacher calls
    init_s: float = 0.0  # model load (and warm-up) of its last start
    pids: list[int] = field(default_factory=list)
    gpu_peak_bytes: int | None = None

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.busy_s if self.busy_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pairs_per_s": round(self.pairs_per_s, 4)}


@dataclass
class SynthesisReport:
    """keys are in source order; made + cached + recovered == len(keys) + filtered.

    keys hold only the pairs kept: a pair the CLIP filter dropped is counted in filtered
    and is not stored (a rerun edits it again, with the same seed, and drops it again).
    """

    store: str
    teacher_id: str
    keys: list[str]
    made: int = 0  # edited by a teacher in this run
    cached: int = 0  # found in the store before the run started
    recovered: int = 0  # committed by an attempt that then died (or a concurrent run)
    skipped: int = 0  # source images that could not be read
    filtered: int = 0  # edits the CLIP filter dropped (teacher.clipModel)
    batch_size: int = 0  # images per teacher call (the spec's, or chosen from free GPU memory)
    seconds: float = 0.0  # wall time of the Ray stage (actor start-up included)
    steady_seconds: float = 0.0  # first teacher call start to last teacher call end
    actors: int = 0
    chunks: int = 0
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    writer_busy_s: float = 0.0
    settings: S3Settings | None = field(default=None, repr=False)

    @property
    def pairs_per_s(self) -> float:
        """Pairs made per wall second of the Ray stage."""
        return self.made / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_pairs_per_s(self) -> float:
        """Pairs made per second once actors were up (start-up and model load excluded)."""
        return self.made / self.steady_seconds if self.steady_seconds > 0 else 0.0

    @property
    def restarts(self) -> int:
        """Actor restarts seen (a restart shows as a second pid under one actor id)."""
        return sum(max(0, len(w.pids) - 1) for w in self.workers.values())

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(sources, targets) as uint8 [N, H, W, 3], in source order."""
        from trainers.synthesis.stores import load_pairs

        return load_pairs(self.store, self.keys, settings=self.settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no keys list, no settings)."""
        return {
            "store": self.store,
            "teacher_id": self.teacher_id,
            "pairs": len(self.keys),
            "made": self.made,
            "cached": self.cached,
            "recovered": self.recovered,
            "skipped": self.skipped,
            "filtered": self.filtered,
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 3),
            "steady_seconds": round(self.steady_seconds, 3),
            "pairs_per_s": round(self.pairs_per_s, 4),
            "steady_pairs_per_s": round(self.steady_pairs_per_s, 4),
            "actors": self.actors,
            "chunks": self.chunks,
            "restarts": self.restarts,
            "writer_busy_s": round(self.writer_busy_s, 3),
            "workers": {k: w.to_dict() for k, w in sorted(self.workers.items())},
        }


def merge_worker_rows(rows: Iterable[dict[str, Any]]) -> dict[str, WorkerStats]:
    """Fold the per-chunk rows the teacher actors emit into one entry per actor."""
    workers: dict[str, WorkerStats] = {}
    for row in rows:
        w = workers.setdefault(row["worker"], WorkerStats(worker=row["worker"]))
        w.pairs += int(row["made"])
        w.chunks += 1
        w.busy_s += float(row["busy_s"])
        w.init_s = float(row["init_s"])
        if row["pid"] not in w.pids:
            w.pids.append(int(row["pid"]))
        if row.get("gpu_peak_bytes") is not None:
            w.gpu_peak_bytes = max(w.gpu_peak_bytes or 0, int(row["gpu_peak_bytes"]))
    return workers
