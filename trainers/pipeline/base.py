"""`e2gan base`: synthesize pairs for many concepts and train the base with Ray Train."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from e2gan_api.spec import BaseConceptSpec, ConceptBaseSpec, DataSpec, ResourcesSpec, TrainingSpec
from trainers.pipeline.progress import Progress
from trainers.pipeline.resources import ray_session

# Held out of the built-in base so the embedded default (and the benchmarks) fine-tune
# on concepts the base has never seen, as a user's new concept would be.
HELD_OUT_CONCEPTS = ("pencil-sketch", "van-gogh")

BUILTIN_PROMPTS = {
    "old-photo": "make it look like an old faded sepia photograph",
    "cartoon": "turn it into a flat cartoon with dark outlines",
    "winter": "make it a cold winter day with falling snow",
    "negative": "invert the colours like a film negative",
    "vignette": "darken the corners with a warm vignette",
    "blueprint": "draw it as a white-on-blue blueprint",
    "thermal": "show it as a thermal camera heat map",
    "night": "make it night time",
    "pencil-sketch": "turn the photo into a pencil sketch",
    "van-gogh": "paint it in the style of Van Gogh with swirling strokes",
}


def default_base_spec() -> ConceptBaseSpec:
    """The built-in base: every procedural teacher except the held-out ones, 64 px, on
    procedural scenes (examples/concepts/builtin-base-photos.yaml adds real photos)."""
    from trainers.teachers import PROCEDURAL_TEACHERS

    concepts = [
        BaseConceptSpec(concept=name, prompt=BUILTIN_PROMPTS.get(name, name.replace("-", " ")))
        for name in sorted(PROCEDURAL_TEACHERS)
        if name not in HELD_OUT_CONCEPTS
    ]
    return ConceptBaseSpec(
        concepts=concepts,
        data=DataSpec(pairs=512, held_out=16, seed=1),
        training=TrainingSpec(resolution=64, steps=20000, batch_size=16, learning_rate=1e-3, max_seconds=3600),
        resources=ResourcesSpec(workers=1, cpus_per_worker=2),
    )


class BaseJobError(RuntimeError):
    """A refusal with a one-line reason; the CLI exits 2."""


def run_base(
    spec: ConceptBaseSpec,
    out: Path,
    storage: str,
    catalog_uri: str | None = None,
    name: str = "base",
    progress_key: str | None = None,
    checkpoint_every: int = 200,
    init: Path | None = None,
) -> tuple[Path, dict]:
    """Train the base; with a catalog, publish the weights and report progress there.

    `init` starts from an existing base's weights (and its discriminator, when one is
    shipped beside it) instead of random ones; a resume from a checkpoint ignores it."""
    catalog = None
    if catalog_uri:
        from catalog import CatalogError, open_catalog

        try:
            catalog = open_catalog(catalog_uri)
        except CatalogError as exc:
            raise BaseJobError(f"catalog: {exc}") from exc
    progress = Progress(catalog, progress_key)
    try:
        start = None
        if init is not None:  # refused before Ray starts or anything is synthesized
            from trainers.text import load_text_encoder

            start = _initial_weights(init, spec, lambda: load_text_encoder(None))
        with ray_session(spec.resources):  # one Ray for synthesis and training (inner sessions join it)
            path, state = _run_base(spec, out, storage, progress, checkpoint_every, start)
        if catalog is not None:
            from catalog.bases import publish_base

            progress.stage("Publishing", f"base weights to {catalog_uri}")
            published = publish_base(catalog, path, name, {"steps": state["steps"], "concepts": state["concepts"]})
            state["published"] = published
            progress.update(result={"uri": published["uri"], "digest": published["digest"], "version": published["digest"][:16],
                                    "metrics": {"steps": state["steps"], "loss": state.get("loss")}})
        progress.stage("Done", f"{state['steps']} steps")
        return path, state
    except Exception as exc:
        progress.failed(f"{type(exc).__name__}: {exc}")
        raise


def _initial_weights(init: Path, spec: ConceptBaseSpec, load_encoder) -> tuple[dict, dict | None, dict[str, str]]:
    """The generator (and discriminator) state to start from, checked against the spec; BaseJobError in one line.

    The text encoder loads last (`load_encoder()`), only once the files themselves fit; then
    `check_base` checks resolution and encoder as `distill` does."""
    from safetensors import SafetensorError

    from trainers.models.identity import check_base, check_resolution
    from trainers.models.weights import discriminator_beside, load_generator, read_metadata, weights_digest
    from trainers.train.objective import Objective, new_discriminator

    try:
        generator = load_generator(init)
        meta = read_metadata(init)
    except SafetensorError as exc:  # truncated or not safetensors inside
        raise BaseJobError(f"--init: {init} is not a readable safetensors file ({exc})") from None
    except (OSError, ValueError) as exc:
        raise BaseJobError(f"--init: {exc}") from None
    if generator.config.width != spec.width:
        raise BaseJobError(
            f"--init: {init} has width {generator.config.width} but the spec trains width {spec.width}; "
            f"set width: {generator.config.width} or start from random weights"
        )
    try:
        check_resolution(meta, f"--init {init}", spec.training.resolution)  # before the encoder loads
    except ValueError as exc:
        raise BaseJobError(str(exc)) from None
    disc_state = None
    wanted = new_discriminator(Objective.from_training(spec.training, ndf=spec.width), spec.training.resolution)
    if wanted is not None:
        try:
            shipped = discriminator_beside(init, wanted.ndf, wanted.n_layers)
        except ValueError as exc:
            raise BaseJobError(f"--init: {exc}; move it aside to start a fresh one") from None
        disc_state = shipped.state_dict() if shipped is not None else None
    encoder = load_encoder()
    try:
        check_base(meta, f"--init {init}", spec.training.resolution, encoder)
    except ValueError as exc:
        raise BaseJobError(str(exc)) from None
    if wanted is not None and disc_state is None:
        print(f"[e2gan] --init {init} ships no discriminator: starting a fresh one", flush=True)
    record = {"sha256": weights_digest(init), "steps": meta.get("steps"), "discriminator": disc_state is not None}
    return generator.state_dict(), disc_state, {"init": json.dumps(record, sort_keys=True)}


def _run_base(
    spec: ConceptBaseSpec, out: Path, storage: str, progress: Progress, checkpoint_every: int,
    start: tuple[dict, dict | None, dict[str, str]] | None = None,
) -> tuple[Path, dict]:
    from trainers.data.shards import open_shards, write_shards
    from trainers.models.identity import base_identity
    from trainers.models.weights import discriminator_path, save_discriminator, save_generator
    from trainers.synthesis import ConceptSource, check_teachers, synthesize_concepts
    from trainers.synthesis.stores import open_pair_store
    from trainers.teachers import TeacherUnavailable
    from trainers.text import load_text_encoder
    from trainers.train.base import BaseTrainSettings, train_base
    from trainers.train.loop import PairArrays
    from trainers.train.objective import Objective

    started = time.perf_counter()
    if spec.training.perceptual_weights:  # refused before any synthesis or training
        from trainers.train.perceptual import PerceptualWeightsError, load_feature_net

        try:
            load_feature_net(spec.training.perceptual_weights)
        except PerceptualWeightsError as exc:
            raise BaseJobError(str(exc)) from exc
    encoder = load_text_encoder(None)
    res = spec.training.resolution
    init_state, init_disc, init_meta = start or (None, None, {})
    store = Path(storage) / "pairs" if "://" not in storage else Path("./runs/base-pairs")
    progress.stage("Synthesizing", f"{spec.data.pairs} pairs for each of {len(spec.concepts)} concepts")
    # One Ray Data pipeline for every concept; each sees different scenes (seed offset).
    items = [
        ConceptSource(concept.teacher, concept.concept, concept.prompt, spec.data.source, spec.data.pairs, res,
                      spec.data.seed + 1000 * i)
        for i, concept in enumerate(spec.concepts)
    ]
    try:
        check_teachers(items)  # a bad teacher is refused before any synthesis
    except (TeacherUnavailable, KeyError, ValueError) as exc:
        raise BaseJobError(str(exc)) from exc
    with ray_session(spec.resources):
        reports = synthesize_concepts(items, store, gpus_per_actor=spec.resources.gpus_per_worker)
    # Every concept's pairs as uint8 shards beside the store, written once (a rerun reuses
    # them): the workers memory-map them and read only the pairs each batch samples.
    keys = [key for report in reports for key in report.keys]
    shards = write_shards(store / "shards", keys, open_pair_store(store).load)
    sources, targets, _ = open_shards(shards)
    concept = np.concatenate([np.full(len(r.keys), i, dtype=np.int64) for i, r in enumerate(reports)])
    pairs = PairArrays(sources, targets, encoder.encode([c.prompt for c in spec.concepts]).float(), concept)
    generator = {"width": spec.width, "text_dim": encoder.dim}
    settings = BaseTrainSettings(
        steps=spec.training.steps,
        batch_size=spec.training.batch_size,
        lr=spec.training.learning_rate,
        seed=spec.training.seed,
        max_seconds=spec.training.max_seconds,
        workers=spec.resources.workers,
        use_gpu=spec.resources.gpus_per_worker > 0,
        cpus_per_worker=1.0 if spec.resources.gpus_per_worker == 0 else float(spec.resources.cpus_per_worker),
        threads=spec.resources.cpus_per_worker,
        checkpoint_every=checkpoint_every,
        generator=generator,
        objective=Objective.from_training(spec.training, ndf=spec.width).to_dict(),
        init=init_state,
        init_discriminator=init_disc,
    )
    from catalog.ray_storage import storage_for

    # Checkpoints on a local folder or the catalog's S3 (a restarted job resumes from either).
    storage_path, storage_fs = storage_for(storage if "://" in storage else Path(storage).resolve())
    progress.stage("Training", f"{len(spec.concepts)} concepts, {spec.training.steps} steps")
    with ray_session(spec.resources):
        model, state, disc = train_base(pairs, settings, storage_path, storage_filesystem=storage_fs)
    meta = {
        **base_identity(encoder, res, spec.width, [c.concept for c in spec.concepts], settings.objective),
        **init_meta,
        "steps": str(state["step"]),
        "seed": str(spec.training.seed),
        "spec": spec.model_dump_json(by_alias=True),
    }
    save_generator(model, out, extra=meta)
    if disc is not None:  # shipped beside the base: concept fine-tunes start from it
        save_discriminator(disc, discriminator_path(out), extra={"resolution": str(res)})
    return out, {"steps": state["step"], "loss": state.get("loss"), "seconds": round(time.perf_counter() - started, 1),
                 "concepts": len(spec.concepts)}
