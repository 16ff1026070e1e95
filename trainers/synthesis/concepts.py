"""synthesize_concepts: many concepts' pairs through one Ray Data pipeline (base synthesis).

Sources are opened inside Ray tasks, one concept per task, never on the driver: a task
opens its concept's sources (builtin scenes, a folder or S3), plans its keys, drops what
the store holds and emits its chunks; the same teacher and writer stages as
synthesize_pairs follow, with one actor pool for every concept (concepts sharing a
diffusion model share its pipeline). The driver receives only keys and figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.synthesis.plan import chunk_rows, plan_chunks, plan_keys
from trainers.synthesis.report import SynthesisReport
from trainers.synthesis.runner import (
    Stages,
    available_actors,
    fill_report,
    prepare_job,
    report_filtered,
    store_location,
)
from trainers.synthesis.stores import open_pair_store
from trainers.synthesis.workers import TeacherFactory
from trainers.teachers.base import TeacherUnavailable
from trainers.teachers.factory import build_teacher

if TYPE_CHECKING:
    from catalog.settings import S3Settings


@dataclass(frozen=True)
class ConceptSource:
    """One concept of a base: its teacher and prompt, and where its n sources come from."""

    teacher: TeacherSpec
    concept: str
    prompt: str
    source: str  # builtin://scenes, a folder or s3://bucket/prefix
    n: int
    size: int
    seed: int = 0


def check_teachers(items: list[ConceptSource], factory: TeacherFactory | None = None) -> None:
    """Build every concept's teacher (no weights load) so a bad one fails before Ray starts.

    Raises TeacherUnavailable, KeyError or ValueError with the concept named.
    """
    for i, item in enumerate(items):
        try:
            (factory or build_teacher)(item.teacher, item.concept)
        except (TeacherUnavailable, KeyError, ValueError) as exc:
            raise type(exc)(f"concepts[{i}].teacher ({item.concept}): {exc}") from exc


def plan_concept(
    row: dict[str, Any],
    items: list[ConceptSource],
    teacher_ids: list[str],
    batch_sizes: list[int],
    store: str,
    settings: S3Settings | None,
) -> list[dict[str, Any]]:
    """Runs in a Ray task: open one concept's sources, plan it, emit its plan row and chunks."""
    from trainers.sources import open_source

    j = int(row["job"])
    item = items[j]
    sources = open_source(item.source, item.n, item.size, item.seed)
    keys = plan_keys(sources.hashes, teacher_ids[j], item.prompt, item.concept)
    cached = open_pair_store(store, settings).known(keys)
    chunks = plan_chunks(keys, sources.hashes, batch_sizes[j], cached)
    empty = np.empty((0, *sources.images.shape[1:]), np.uint8)
    plan = {"plan": True, "job": j, "keys": keys, "cached": len(cached), "skipped": sources.skipped,
            "chunks": len(chunks)}
    rows = [{"meta": json.dumps(plan), "images": empty}]
    for chunk_row in chunk_rows(chunks, sources.images):
        meta = json.loads(str(chunk_row["meta"]))
        rows.append({"meta": json.dumps({**meta, "job": j}), "images": chunk_row["images"]})
    return rows


def synthesize_concepts(
    items: list[ConceptSource],
    store: str | Path,
    *,
    actors: int | None = None,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    writers: int = 1,
    writer_cpus: float = 0,
    settings: S3Settings | None = None,
    teacher_factory: TeacherFactory | None = None,
    max_retries: int = 3,
) -> list[SynthesisReport]:
    """One report per item, in order; pairs land in one store (keys never collide)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("synthesize_concepts needs a running Ray: call ray.init() (or ray_session()) first")
    if not items:
        return []
    factory = teacher_factory or build_teacher
    on_gpu = gpus_per_actor > 0
    prepared = [prepare_job(i.teacher, i.concept, i.prompt, i.size, on_gpu, factory) for i in items]
    jobs = [p[0] for p in prepared]
    store_uri = store_location(store)
    ds = ray.data.from_items([{"job": j} for j in range(len(items))], override_num_blocks=len(items))
    # Planning is light I/O: it reserves no CPU, so it never waits behind the teacher actors.
    ds = ds.flat_map(
        plan_concept,
        fn_kwargs={
            "items": items,
            "teacher_ids": [p[2] for p in prepared],
            "batch_sizes": [int(job.spec.batch_size or 1) for job in jobs],
            "store": store_uri,
            "settings": settings,
        },
        num_cpus=0,
    )
    # Plans are materialized in the object store (images stay there); only their small JSON
    # metadata comes to the driver, which then knows every chunk before any teacher starts.
    planned = ds.materialize()
    metas = [json.loads(m["meta"]) for m in planned.select_columns(["meta"]).take_all()]
    chunks = sum(1 for m in metas if not m.get("plan"))
    stages = Stages(
        jobs=jobs,
        options=[p[1] for p in prepared],
        store=store_uri,
        settings=settings,
        factory=factory,
        actors=max(1, min(actors or available_actors(gpus_per_actor, cpus_per_actor), chunks)),
        writers=max(1, min(writers, chunks)),
        gpus_per_actor=gpus_per_actor,
        cpus_per_actor=cpus_per_actor,
        writer_cpus=writer_cpus,
        max_retries=max_retries,
    )
    started = time.perf_counter()
    # Everything cached: no actor starts at all.
    rows = [json.loads(row["meta"]) for row in stages.apply(planned).take_all()] if chunks else metas
    seconds = time.perf_counter() - started
    sink = open_pair_store(store_uri, settings)
    reports = []
    for j, (job, _options, teacher_id) in enumerate(prepared):
        plans = [r for r in rows if r.get("plan") and r["job"] == j]
        if len(plans) != 1:
            raise RuntimeError(f"Ray Data returned {len(plans)} plans for concept {job.concept}")
        plan = plans[0]
        done = [r for r in rows if not r.get("plan") and r.get("job") == j]
        report = SynthesisReport(
            store=store_uri,
            teacher_id=teacher_id,
            keys=plan["keys"],
            cached=plan["cached"],
            skipped=plan["skipped"],
            chunks=plan["chunks"],
            seconds=seconds,
            actors=stages.actors if plan["chunks"] else 0,
            settings=settings,
            batch_size=int(job.spec.batch_size or 1),
        )
        fill_report(report, done, plan["chunks"])
        filtered = set(report_filtered(done))
        report.keys = [k for k in plan["keys"] if k not in filtered]
        missing = len(report.keys) - len(sink.known(report.keys))
        if missing:
            raise RuntimeError(f"{missing} of {len(report.keys)} pairs of {job.concept} are not in {store_uri}")
        reports.append(report)
    return reports
