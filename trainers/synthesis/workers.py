"""The two Ray Data stages: teacher actors (one pipeline each) and pair writers.

Writers are a separate stage so a GPU never waits on PNG encoding or uploads: Ray Data
streams a chunk's edits to a writer while the teacher starts the next chunk. A writer
only passes a chunk on after committing it, so no pair is reported that is not stored.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.data.pairs import Pair, synthesize_batch
from trainers.synthesis.stores import open_pair_store
from trainers.teachers.base import Teacher

if TYPE_CHECKING:
    from catalog.settings import S3Settings

TeacherFactory = Callable[..., Teacher]

Batch = dict[str, Any]


def _worker_id() -> str:
    """The Ray actor id (it survives restarts: a restarted actor stays one worker in the report)."""
    import ray

    actor = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    return actor[:12] if actor else f"pid-{os.getpid()}"


def _gpu_peak_bytes() -> int | None:
    torch = sys.modules.get("torch")  # never import torch just to ask
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return None


class TeacherWorker:
    """One teacher per actor; each call edits one planned chunk with synthesize_batch."""

    def __init__(
        self,
        spec: TeacherSpec,
        concept: str,
        prompt: str,
        store: str,
        settings: S3Settings | None,
        factory: TeacherFactory,
        options: dict[str, Any],
        threads: int,
        warmup_shape: tuple[int, int, int] | None,
    ) -> None:
        started = time.perf_counter()
        self.concept, self.prompt = concept, prompt
        self.teacher = factory(spec, concept, **options)
        if "torch" in sys.modules and threads > 0:
            sys.modules["torch"].set_num_threads(threads)  # match the CPUs Ray reserved for us
        # Load the model now, so a chunk's time is teacher time, not start-up time.
        getattr(self.teacher, "pipeline", None)
        if warmup_shape is not None and str(getattr(self.teacher, "device", "cpu")).startswith("cuda"):
            # First CUDA calls pick kernels (and torch.compile traces): pay it before timing starts.
            self.teacher.edit(np.zeros((spec.batch_size, *warmup_shape), np.uint8), prompt, 0)
        self.sink = open_pair_store(store, settings)
        self.worker = _worker_id()
        self.init_s = time.perf_counter() - started

    def __call__(self, batch: Batch) -> Batch:
        meta = json.loads(batch["meta"][0])
        images = np.asarray(batch["images"][0], dtype=np.uint8)
        keys, hashes, indices = meta["keys"], meta["hashes"], meta["indices"]
        done = self.sink.recovered(keys, meta["shard"])  # an earlier attempt committed these
        keep = [i for i, k in enumerate(keys) if k not in done]
        start, t0 = time.time(), time.perf_counter()
        pairs = (
            synthesize_batch(
                images[keep],
                [hashes[i] for i in keep],
                self.teacher,
                self.prompt,
                self.concept,
                indices=[indices[i] for i in keep],
            )
            if keep
            else []
        )
        busy = time.perf_counter() - t0
        made = [p.key for p in pairs]
        if made != [keys[i] for i in keep]:
            raise RuntimeError(
                f"teacher id on this worker ({self.teacher.id}) differs from the planned one: the worker "
                "resolved the model or dtype differently from the driver; pass the same device to both"
            )
        out = {
            **meta,
            "keys": made,
            "hashes": [p.source_hash for p in pairs],
            "indices": [p.index for p in pairs],
            "seeds": [p.seed for p in pairs],
            "teacher_id": self.teacher.id,
            "made": len(pairs),
            "recovered": len(done),
            "worker": self.worker,
            "pid": os.getpid(),
            "busy_s": busy,
            "init_s": self.init_s,
            "start": start,
            "end": start + busy,
            "gpu_peak_bytes": _gpu_peak_bytes(),
        }
        empty = np.empty((0, *images.shape[1:]), np.uint8)
        return {
            "meta": [json.dumps(out)],
            "sources": [images[keep]],
            "targets": [np.stack([p.target for p in pairs]) if pairs else empty],
        }


class PairWriter:
    """Commits each chunk's pairs to the store, then passes its figures on (no images)."""

    def __init__(self, store: str, settings: S3Settings | None, prompt: str, concept: str) -> None:
        self.sink = open_pair_store(store, settings)
        self.prompt, self.concept = prompt, concept

    def __call__(self, batch: Batch) -> Batch:
        meta = json.loads(batch["meta"][0])
        sources = np.asarray(batch["sources"][0], dtype=np.uint8)
        targets = np.asarray(batch["targets"][0], dtype=np.uint8)
        pairs = [
            Pair(
                key=key,
                source=sources[i],
                target=targets[i],
                source_hash=meta["hashes"][i],
                teacher_id=meta["teacher_id"],
                prompt=self.prompt,
                seed=meta["seeds"][i],
                concept=self.concept,
                index=meta["indices"][i],
            )
            for i, key in enumerate(meta["keys"])
        ]
        t0 = time.perf_counter()
        meta["written"] = self.sink.commit(pairs, meta["shard"])
        meta["write_s"] = time.perf_counter() - t0
        for name in ("keys", "hashes", "indices", "seeds"):
            meta.pop(name)  # the driver knows them; keep result rows small
        return {"meta": [json.dumps(meta)]}
