"""synthesize_pairs: sources -> Ray Data (teacher actors -> writers) -> pair store.

The driver opens the sources, plans every key and drops what the store already holds;
only the missing chunks reach Ray. Ray must already be initialised: the pipeline owns
ray.init (a local cluster, or the RayJob's).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2gan_api.spec import TeacherSpec
from trainers.sources import SourceImages, open_source
from trainers.synthesis.plan import chunk_rows, plan_chunks, plan_keys
from trainers.synthesis.report import SynthesisReport, merge_worker_rows
from trainers.synthesis.stores import is_s3, open_pair_store
from trainers.synthesis.workers import PairWriter, TeacherFactory, TeacherWorker
from trainers.teachers.factory import build_teacher

if TYPE_CHECKING:
    from catalog.settings import S3Settings

DIFFUSION_KINDS = ("instruct-pix2pix", "sdedit")
VAE_SLICING_FROM = 768  # px: decode one image at a time above this (bounds decoder memory)
VAE_TILING_FROM = 1024  # px: decode in tiles above this


def teacher_options(spec: TeacherSpec, size: int, on_gpu: bool) -> dict[str, Any]:
    """Build options of a teacher: its device, and VAE slicing/tiling for large images.

    dtype, channels_last, SDPA attention and torch.compile come from the spec and
    DiffusionTeacher; the driver's copy gets the workers' device so its id (and thus every
    key) matches theirs: fp16 resolves to fp32 on a CPU.
    """
    if spec.kind not in DIFFUSION_KINDS:
        return {}
    return {
        "device": "cuda" if on_gpu else "cpu",
        "vae_slicing": size >= VAE_SLICING_FROM,
        "vae_tiling": size >= VAE_TILING_FROM,
    }


def available_actors(gpus_per_actor: float, cpus_per_actor: float) -> int:
    """How many teacher actors the cluster fits now."""
    import ray

    resources = ray.cluster_resources()
    if gpus_per_actor > 0:
        gpus = resources.get("GPU", 0.0)
        if gpus < gpus_per_actor:
            raise RuntimeError(
                f"gpus_per_actor={gpus_per_actor:g} but the Ray cluster has {gpus:g} GPUs; "
                "pass actors= explicitly when an autoscaler adds GPU workers later"
            )
        return int(gpus // gpus_per_actor)
    return max(1, int(resources.get("CPU", 1.0) // max(cpus_per_actor, 1e-3)))


def synthesize_pairs(
    source_uri: str | None = None,
    n: int | None = None,
    size: int | None = None,
    seed: int = 0,
    *,
    teacher_spec: TeacherSpec,
    concept: str,
    prompt: str,
    store: str | Path,
    sources: SourceImages | None = None,
    actors: int | None = None,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    batch_size: int | None = None,
    writers: int = 1,
    writer_cpus: float = 0,
    start_index: int = 0,
    settings: S3Settings | None = None,
    teacher_factory: TeacherFactory | None = None,
    max_retries: int = 3,
) -> SynthesisReport:
    """Make the missing pairs of sources on Ray actors; keys come back in source order.

    Sources are open_source(source_uri, n, size, seed), or `sources` as given. Pair i gets
    index start_index + i and the seed pair_seed(concept, hash, index), so the result does not
    depend on actors or partitioning. store is a local folder (the PairStore layout) or
    s3://bucket/prefix. S3 settings default to E2GAN_S3_* in each worker's own environment
    (how KubeRay pods get the Secret); settings given here travel to the actors pickled,
    secrets included, so pass them only where the workers' environment lacks them.
    batch_size overrides teacher_spec.batch_size: images per teacher call and per chunk.
    An actor that dies is restarted and its chunk retried up to max_retries times; writers
    are I/O-bound and reserve writer_cpus (0: they never keep a teacher from starting).
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError("synthesize_pairs needs a running Ray: call ray.init() (or ray_session()) first")
    if sources is None:
        if source_uri is None or n is None or size is None:
            raise ValueError("give either sources= or source_uri, n and size")
        sources = open_source(source_uri, n, size, seed)
    spec = teacher_spec if batch_size is None else teacher_spec.model_copy(update={"batch_size": batch_size})
    image_shape = tuple(sources.images.shape[1:])
    on_gpu = gpus_per_actor > 0
    options = teacher_options(spec, int(image_shape[0]) if image_shape else 0, on_gpu)
    factory = teacher_factory or build_teacher
    # Built here for its id, and to refuse a bad model before any actor starts; the model
    # itself loads lazily, so this costs no weights on the driver.
    teacher_id = factory(spec, concept, **options).id
    store_uri = str(store) if is_s3(store) else str(Path(str(store).removeprefix("file://")).expanduser())
    sink = open_pair_store(store_uri, settings)
    keys = plan_keys(sources.hashes, teacher_id, prompt, concept, start_index)
    cached = sink.known(keys)
    chunks = plan_chunks(keys, sources.hashes, spec.batch_size, cached, start_index)
    report = SynthesisReport(
        store=store_uri,
        teacher_id=teacher_id,
        keys=keys,
        cached=len(cached),
        skipped=sources.skipped,
        chunks=len(chunks),
        settings=settings,
    )
    if not chunks:
        return report
    report.actors = min(actors or available_actors(gpus_per_actor, cpus_per_actor), len(chunks))
    ds = ray.data.from_items(chunk_rows(chunks, sources.images), override_num_blocks=len(chunks))
    retries = {"max_restarts": max_retries, "max_task_retries": max_retries}
    with warnings.catch_warnings():
        # Ray 2.60 flags extra remote arguments as deprecated but has no named form of these
        # two, and its default is to retry forever: a chunk that always kills its actor (OOM)
        # would hang the job instead of failing it.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map_batches(
            TeacherWorker,
            batch_size=1,  # one row is one planned chunk: the teacher batch stays fixed
            compute=ray.data.ActorPoolStrategy(size=report.actors),
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
            fn_constructor_kwargs={
                "spec": spec,
                "concept": concept,
                "prompt": prompt,
                "store": store_uri,
                "settings": settings,
                "factory": factory,
                "options": options,
                "threads": max(1, int(cpus_per_actor)),
                "warmup_shape": image_shape if on_gpu else None,
            },
            **retries,
        )
        ds = ds.map_batches(
            PairWriter,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(writers, len(chunks)))),
            num_cpus=writer_cpus,
            fn_constructor_kwargs={
                "store": store_uri,
                "settings": settings,
                "prompt": prompt,
                "concept": concept,
            },
            **retries,
        )
    started = time.perf_counter()
    rows = [json.loads(row["meta"]) for row in ds.take_all()]
    report.seconds = time.perf_counter() - started
    _fill(report, rows, len(chunks))
    missing = len(keys) - len(sink.known(keys))
    if missing:
        raise RuntimeError(f"{missing} of {len(keys)} pairs are not in {store_uri} after synthesis")
    return report


def _fill(report: SynthesisReport, rows: list[dict[str, Any]], chunks: int) -> None:
    if len(rows) != chunks:
        raise RuntimeError(f"Ray Data returned {len(rows)} results for {chunks} chunks")
    report.made = sum(r["made"] for r in rows)
    report.recovered = sum(r["recovered"] for r in rows)
    report.workers = merge_worker_rows(rows)
    report.steady_seconds = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    report.writer_busy_s = sum(r["write_s"] for r in rows)
