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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.data.pairs import Pair, synthesize_batch
from trainers.synthesis.stores import open_pair_store
from trainers.teachers.base import Teacher
from trainers.teachers.clip_filter import ClipFilter

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


@dataclass(frozen=True)
class Job:
    """One concept's synthesis: its teacher spec (batch size resolved), concept and prompt."""

    spec: TeacherSpec
    concept: str
    prompt: str


def _teacher_key(spec: TeacherSpec, concept: str) -> str:
    # A diffusion teacher does not depend on the concept: concepts sharing a model share one pipeline.
    return spec.model_dump_json() + ("" if spec.kind != "procedural" else f"|{concept}")


class TeacherWorker:
    """Teachers for every job (one pipeline per distinct model); each call edits one planned chunk."""

    def __init__(
        self,
        jobs: list[Job],
        store: str,
        settings: S3Settings | None,
        factory: TeacherFactory,
        options: list[dict[str, Any]],
        threads: int,
        warm_up: bool,
    ) -> None:
        started = time.perf_counter()
        self.jobs = jobs
        if "torch" in sys.modules and threads > 0:
            sys.modules["torch"].set_num_threads(threads)  # match the CPUs Ray reserved for us
        built: dict[str, Teacher] = {}
        self.teachers: list[Teacher] = []
        for job, opts in zip(jobs, options, strict=True):
            key = _teacher_key(job.spec, job.concept)
            if key not in built:
                built[key] = factory(job.spec, job.concept, **opts)
            self.teachers.append(built[key])
        filters: dict[tuple[str, float], ClipFilter] = {}
        self.filters: list[ClipFilter | None] = []
        for job, teacher in zip(jobs, self.teachers, strict=True):
            if job.spec.clip_model:
                fkey = (job.spec.clip_model, job.spec.clip_threshold)
                device = str(getattr(teacher, "device", "cpu"))
                filters.setdefault(fkey, ClipFilter(job.spec.clip_model, job.spec.clip_threshold, device))
                self.filters.append(filters[fkey])
            else:
                self.filters.append(None)
        for teacher in built.values():
            # Load the model now, so a chunk's time is teacher time, not start-up time.
            getattr(teacher, "pipeline", None)
            if warm_up and str(getattr(teacher, "device", "cpu")).startswith("cuda") and hasattr(teacher, "warmup"):
                # First CUDA calls pick kernels (and torch.compile traces): pay it before timing starts.
                teacher.warmup()
        self.sink = open_pair_store(store, settings)
        self.worker = _worker_id()
        self.init_s = time.perf_counter() - started

    def __call__(self, batch: Batch) -> Batch:
        meta = json.loads(batch["meta"][0])
        images = np.asarray(batch["images"][0], dtype=np.uint8)
        if meta.get("plan"):
            return {"meta": [json.dumps(meta)], "sources": [images], "targets": [images]}  # passes through
        j = int(meta.get("job", 0))
        job, teacher, clip = self.jobs[j], self.teachers[j], self.filters[j]
        keys, hashes, indices = meta["keys"], meta["hashes"], meta["indices"]
        done = self.sink.recovered(keys, meta["shard"])  # an earlier attempt committed these
        keep = [i for i, k in enumerate(keys) if k not in done]
        start, t0 = time.time(), time.perf_counter()
        pairs = (
            synthesize_batch(
                images[keep],
                [hashes[i] for i in keep],
                teacher,
                job.prompt,
                job.concept,
                indices=[indices[i] for i in keep],
            )
            if keep
            else []
        )
        made = [p.key for p in pairs]
        if made != [keys[i] for i in keep]:
            raise RuntimeError(
                f"teacher id on this worker ({teacher.id}) differs from the planned one: the worker "
                "resolved the model or dtype differently from the driver; pass the same device to both"
            )
        filtered: list[str] = []
        if clip is not None and pairs:
            passed = clip.keep(np.stack([p.source for p in pairs]), np.stack([p.target for p in pairs]), job.prompt)
            filtered = [p.key for p, ok in zip(pairs, passed, strict=True) if not ok]
            pairs = [p for p, ok in zip(pairs, passed, strict=True) if ok]
        busy = time.perf_counter() - t0
        out = {
            **meta,
            "keys": [p.key for p in pairs],
            "hashes": [p.source_hash for p in pairs],
            "indices": [p.index for p in pairs],
            "seeds": [p.seed for p in pairs],
            "teacher_id": teacher.id,
            "made": len(made),
            "filtered_keys": filtered,
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
            "sources": [np.stack([p.source for p in pairs]) if pairs else empty],
            "targets": [np.stack([p.target for p in pairs]) if pairs else empty],
        }


class PairWriter:
    """Commits each chunk's pairs to the store, then passes its figures on (no images)."""

    def __init__(self, store: str, settings: S3Settings | None, jobs: list[Job]) -> None:
        self.sink = open_pair_store(store, settings)
        self.jobs = jobs

    def __call__(self, batch: Batch) -> Batch:
        meta = json.loads(batch["meta"][0])
        if meta.get("plan"):
            return {"meta": [json.dumps(meta)]}
        job = self.jobs[int(meta.get("job", 0))]
        sources = np.asarray(batch["sources"][0], dtype=np.uint8)
        targets = np.asarray(batch["targets"][0], dtype=np.uint8)
        pairs = [
            Pair(
                key=key,
                source=sources[i],
                target=targets[i],
                source_hash=meta["hashes"][i],
                teacher_id=meta["teacher_id"],
                prompt=job.prompt,
                seed=meta["seeds"][i],
                concept=job.concept,
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
