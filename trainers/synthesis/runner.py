"""synthesize_pairs: sources -> Ray Data (teacher actors -> writers) -> pair store.

The driver opens the sources, plans every key and drops what the store already holds;
only the missing chunks reach Ray. The teacher and writer stages (Stages) are shared with
synthesize_concepts, which plans many concepts inside Ray tasks instead (base synthesis).
Teacher actors take one whole GPU each. Ray must already be initialised: the pipeline owns
ray.init (a local cluster, or the RayJob's).
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2gan_api.spec import TeacherSpec
from trainers.sources import SourceImages, open_source
from trainers.synthesis.plan import chunk_rows, plan_chunks, plan_keys
from trainers.synthesis.report import SynthesisReport, merge_worker_rows
from trainers.synthesis.stores import is_s3, open_pair_store
from trainers.synthesis.workers import Job, PairWriter, TeacherFactory, TeacherWorker
from trainers.teachers.base import Teacher
from trainers.teachers.factory import build_teacher
from trainers.teachers.memory import CPU_BATCH

if TYPE_CHECKING:
    from catalog.settings import S3Settings

DIFFUSION_KINDS = ("instruct-pix2pix", "sdedit")
VAE_SLICING_FROM = 768  # px: decode one image at a time above this (bounds decoder memory)
VAE_TILING_FROM = 1024  # px: decode in tiles above this


def teacher_options(spec: TeacherSpec, size: int, on_gpu: bool) -> dict[str, Any]:
    """Build options of a teacher: its device, and VAE slicing/tiling for large images.

    size is the teacher's own resolution (teacher.resolution) when it has one. dtype,
    channels_last, SDPA attention and torch.compile come from the spec and DiffusionTeacher;
    the driver's copy gets the workers' device so its id (and thus every key) matches
    theirs: dtype auto is bf16 on a GPU, fp32 on a CPU.
    """
    if spec.kind not in DIFFUSION_KINDS:
        return {}
    size = spec.resolution or size
    return {
        "device": "cuda" if on_gpu else "cpu",
        "vae_slicing": size >= VAE_SLICING_FROM,
        "vae_tiling": size >= VAE_TILING_FROM,
    }


def actor_gpus(gpus_per_actor: float) -> float:
    """GPUs one teacher actor reserves: a whole one at most (one pipeline per GPU).

    A value above 1 (a worker's gpusPerWorker) still gives one GPU per actor; the actor
    count then comes from the cluster's GPUs, so a worker with N GPUs runs N actors.
    """
    return min(float(gpus_per_actor), 1.0)


def available_actors(gpus_per_actor: float, cpus_per_actor: float) -> int:
    """How many teacher actors the cluster fits now."""
    import ray

    resources = ray.cluster_resources()
    gpus_each = actor_gpus(gpus_per_actor)
    if gpus_each > 0:
        gpus = resources.get("GPU", 0.0)
        if gpus < gpus_each:
            raise RuntimeError(
                f"gpus_per_actor={gpus_per_actor:g} but the Ray cluster has {gpus:g} GPUs; "
                "pass actors= explicitly when an autoscaler adds GPU workers later"
            )
        return int(gpus // gpus_each)
    return max(1, int(resources.get("CPU", 1.0) // max(cpus_per_actor, 1e-3)))


def _probe_free_gpu(folder: str, resolution: int, kind: str) -> int:
    from trainers.teachers.diffusion import weight_bytes
    from trainers.teachers.memory import auto_batch_size, free_gpu_bytes

    return auto_batch_size(free_gpu_bytes(), weight_bytes(Path(folder)), resolution, kind)


def resolve_batch_size(spec: TeacherSpec, teacher: Teacher, on_gpu: bool) -> int:
    """teacher.batchSize, or (unset) the batch that fits a GPU's free memory, measured once.

    It is measured on a GPU of the cluster (the driver may have none) and then fixed for
    the whole run: chunks are planned with it, so every actor gets the same batches.
    """
    if spec.batch_size:
        return spec.batch_size
    if spec.kind not in DIFFUSION_KINDS or not on_gpu:
        return CPU_BATCH
    folder = str(getattr(teacher, "folder", spec.model))
    return _measured_batch(folder, int(getattr(teacher, "resolution", 512)), spec.kind)


@functools.lru_cache(maxsize=32)
def _measured_batch(folder: str, resolution: int, kind: str) -> int:
    # Once per model and size in this driver: a base's concepts sharing a model probe once.
    import ray

    probe = ray.remote(num_gpus=1, num_cpus=0)(_probe_free_gpu)
    return int(ray.get(probe.remote(folder, resolution, kind)))


def prepare_job(
    spec: TeacherSpec,
    concept: str,
    prompt: str,
    size: int,
    on_gpu: bool,
    factory: TeacherFactory,
    batch_size: int | None = None,
) -> tuple[Job, dict[str, Any], str]:
    """(job with its batch size fixed, build options, teacher id) for one concept.

    The teacher is built here for its id, and to refuse a bad model before any actor
    starts; the model itself loads lazily, so this costs no weights on the driver.
    """
    if batch_size is not None:
        spec = spec.model_copy(update={"batch_size": batch_size})
    options = teacher_options(spec, size, on_gpu)
    teacher = factory(spec, concept, **options)
    spec = spec.model_copy(update={"batch_size": resolve_batch_size(spec, teacher, on_gpu)})
    return Job(spec=spec, concept=concept, prompt=prompt), options, teacher.id


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
    gpus_per_actor > 0 puts each actor on one whole GPU (see actor_gpus).
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
    image_shape = tuple(sources.images.shape[1:])
    on_gpu = gpus_per_actor > 0
    factory = teacher_factory or build_teacher
    job, options, teacher_id = prepare_job(
        teacher_spec, concept, prompt, int(image_shape[0]) if image_shape else 0, on_gpu, factory, batch_size
    )
    store_uri = store_location(store)
    sink = open_pair_store(store_uri, settings)
    keys = plan_keys(sources.hashes, teacher_id, prompt, concept, start_index)
    cached = sink.known(keys)
    chunks = plan_chunks(keys, sources.hashes, job.spec.batch_size or CPU_BATCH, cached, start_index)
    report = SynthesisReport(
        store=store_uri,
        teacher_id=teacher_id,
        keys=keys,
        cached=len(cached),
        skipped=sources.skipped,
        chunks=len(chunks),
        settings=settings,
        batch_size=job.spec.batch_size or CPU_BATCH,
    )
    if not chunks:
        return report
    report.actors = min(actors or available_actors(gpus_per_actor, cpus_per_actor), len(chunks))
    ds = ray.data.from_items(chunk_rows(chunks, sources.images), override_num_blocks=len(chunks))
    stages = Stages(
        jobs=[job],
        options=[options],
        store=store_uri,
        settings=settings,
        factory=factory,
        actors=report.actors,
        writers=max(1, min(writers, len(chunks))),
        gpus_per_actor=gpus_per_actor,
        cpus_per_actor=cpus_per_actor,
        writer_cpus=writer_cpus,
        max_retries=max_retries,
    )
    started = time.perf_counter()
    rows = [json.loads(row["meta"]) for row in stages.apply(ds).take_all()]
    report.seconds = time.perf_counter() - started
    fill_report(report, rows, len(chunks))
    wanted = [k for k in keys if k not in set(report_filtered(rows))]
    missing = len(wanted) - len(sink.known(wanted))
    if missing:
        raise RuntimeError(f"{missing} of {len(wanted)} pairs are not in {store_uri} after synthesis")
    report.keys = wanted
    return report


def store_location(store: str | Path) -> str:
    """An s3:// URI as given, a local path expanded (file:// dropped)."""
    return str(store) if is_s3(store) else str(Path(str(store).removeprefix("file://")).expanduser())


@dataclass
class Stages:
    """The teacher and writer stages every synthesis shares (one concept or many)."""

    jobs: list[Job]
    options: list[dict[str, Any]]
    store: str
    settings: S3Settings | None
    factory: TeacherFactory
    actors: int
    writers: int
    gpus_per_actor: float
    cpus_per_actor: float
    writer_cpus: float
    max_retries: int

    def apply(self, ds: Any) -> Any:
        import ray

        retries = {"max_restarts": self.max_retries, "max_task_retries": self.max_retries}
        on_gpu = self.gpus_per_actor > 0
        with warnings.catch_warnings():
            # Ray 2.60 flags extra remote arguments as deprecated but has no named form of these
            # two, and its default is to retry forever: a chunk that always kills its actor (OOM)
            # would hang the job instead of failing it.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            ds = ds.map_batches(
                TeacherWorker,
                batch_size=1,  # one row is one planned chunk: the teacher batch stays fixed
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=self.cpus_per_actor,
                num_gpus=actor_gpus(self.gpus_per_actor),
                fn_constructor_kwargs={
                    "jobs": self.jobs,
                    "store": self.store,
                    "settings": self.settings,
                    "factory": self.factory,
                    "options": self.options,
                    "threads": max(1, int(self.cpus_per_actor)),
                    "warm_up": on_gpu,
                },
                **retries,
            )
            return ds.map_batches(
                PairWriter,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=self.writers),
                num_cpus=self.writer_cpus,
                fn_constructor_kwargs={"store": self.store, "settings": self.settings, "jobs": self.jobs},
                **retries,
            )


def report_filtered(rows: list[dict[str, Any]]) -> list[str]:
    return [k for r in rows for k in r.get("filtered_keys", [])]


def fill_report(report: SynthesisReport, rows: list[dict[str, Any]], chunks: int) -> None:
    """Fold one job's chunk rows (from the writers) into its report."""
    if len(rows) != chunks:
        raise RuntimeError(f"Ray Data returned {len(rows)} results for {chunks} chunks")
    if not rows:
        return
    report.made = sum(r["made"] for r in rows)
    report.recovered = sum(r["recovered"] for r in rows)
    report.filtered = len(report_filtered(rows))
    report.workers = merge_worker_rows(rows)
    report.steady_seconds = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    report.writer_busy_s = sum(r["write_s"] for r in rows)
