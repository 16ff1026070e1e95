"""`e2gan distill`: synthesize → select → search → fine-tune → evaluate → export → publish.

Everything that can be refused is checked before any heavy work (spec, base weights,
teacher availability, catalog reachability), so a bad request costs seconds and
writes nothing. The adapter is assembled in a scratch folder and handed to the
catalog whole; the catalog publishes it atomically.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest, digest_files
from e2gan_api.spec import ConceptAdapterSpec
from trainers.pipeline.progress import Progress
from trainers.pipeline.resources import (
    builtin_base_path,
    cpus_per_train_worker,
    gpus_per_trial,
    ray_session,
    threads_per_trial,
)

if TYPE_CHECKING:
    from catalog import Catalog


class JobError(RuntimeError):
    """A refusal with a one-line reason (bad input, missing weights); the CLI exits 2."""


@dataclass
class DistillResult:
    folder: Path
    manifest: AdapterManifest
    entry: object | None


def resolve_base(spec: ConceptAdapterSpec) -> Path:
    if spec.base.weights:
        from catalog import CatalogError
        from catalog.bases import fetch_base

        try:  # a local path, or the s3:// URI `e2gan base --catalog` published
            return fetch_base(spec.base.weights)
        except CatalogError as exc:
            raise JobError(f"base.weights: {exc}; train one with `e2gan base` or fix the path") from exc
    if spec.base.name == "builtin":
        try:
            return builtin_base_path()
        except FileNotFoundError as exc:
            raise JobError(f"base: {exc}") from exc
    raise JobError(
        f"base.name: {spec.base.name!r} is a ConceptBase resource; outside Kubernetes give base.weights "
        "(the .safetensors file `e2gan base` wrote) or use 'builtin'"
    )


def distill(
    spec: ConceptAdapterSpec,
    catalog_uri: str | None = None,
    work_dir: Path | None = None,
    progress_key: str | None = None,
    inception: str | None = None,
    publish: bool = True,
) -> DistillResult:
    from catalog import CatalogError, open_catalog

    started = time.perf_counter()
    uri = catalog_uri or spec.catalog.uri
    try:
        catalog = open_catalog(uri)
    except (CatalogError, ValueError) as exc:
        raise JobError(f"catalog: {exc}") from exc
    progress = Progress(catalog, progress_key)
    try:
        return _distill(spec, catalog, uri, progress, work_dir, inception, publish, started)
    except Exception as exc:  # the operator reads this reason; the CLI prints it too
        progress.failed(f"{type(exc).__name__}: {exc}" if not isinstance(exc, JobError) else str(exc))
        raise


def _distill(
    spec: ConceptAdapterSpec,
    catalog: Catalog,
    uri: str,
    progress: Progress,
    work_dir: Path | None,
    inception: str | None,
    publish: bool,
    started: float,
) -> DistillResult:
    from trainers.data.select import select_nearest_centres
    from trainers.data.splits import SplitError, split_by_group
    from trainers.evaluate.grid import save_grid
    from trainers.evaluate.metrics import inception_metrics, psnr, split_metrics, ssim
    from trainers.export.onnx import export_and_verify
    from trainers.models.generator import ConceptGenerator
    from trainers.models.identity import check_base
    from trainers.models.weights import load_generator, read_metadata, weights_digest
    from trainers.sources import open_source
    from trainers.synthesis import synthesize_pairs
    from trainers.synthesis.plan import plan_keys
    from trainers.teachers import TeacherUnavailable, build_teacher
    from trainers.text import load_text_encoder
    from trainers.text.embedding import save_text_embedding
    from trainers.train.concept import ConceptTrainSettings, train_concept
    from trainers.train.loop import PairArrays
    from trainers.train.lora import load_adapter, trainable_parameters
    from trainers.train.objective import Objective, default_device
    from trainers.train.search import SearchSettings, run_search, write_search_report

    progress.stage("Validating", f"concept {spec.concept}")
    objective = Objective.from_training(spec.training)  # its ndf is set from the base below
    if objective.perceptual_weights:
        from trainers.train.perceptual import PerceptualWeightsError, load_feature_net

        try:
            load_feature_net(objective.perceptual_weights)
        except PerceptualWeightsError as exc:
            raise JobError(str(exc)) from exc
    base_path = resolve_base(spec)
    base = load_generator(base_path)
    base_digest = weights_digest(base_path)
    try:
        teacher = build_teacher(spec.teacher, spec.concept)
    except (TeacherUnavailable, KeyError, ValueError) as exc:
        raise JobError(f"teacher: {exc}") from exc
    encoder = load_text_encoder(None)
    try:
        check_base(read_metadata(base_path), base_path, spec.training.resolution, encoder)
    except ValueError as exc:
        raise JobError(str(exc)) from exc
    text = encoder.encode([spec.prompt])[0]
    objective.ndf = base.config.width  # the discriminator is as wide as the generator
    disc_init, disc_note = _base_discriminator(base_path, objective, spec.training.resolution)
    if disc_note:
        print(f"[e2gan] {disc_note}", flush=True)

    # Absolute: Ray Tune and Train refuse a relative storage path ("URI has empty scheme").
    work = Path(work_dir or tempfile.mkdtemp(prefix=f"e2gan-{spec.concept}-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    res = spec.training.resolution

    progress.stage(
        "Selecting", f"{spec.data.pairs} sources, split by photo; keep {spec.data.keep_fraction:.0%} for training by k-means"
    )
    try:
        source = open_source(
            spec.data.source, spec.data.pairs, res, spec.data.seed, (spec.data.crop_scale_min, spec.data.crop_scale_max)
        )
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise JobError(f"data.source: {exc}") from exc
    # Split by photo first (the test photos stay unseen), then choose the training sources by
    # k-means on their features: the teacher edits only what will be used.
    try:
        test_idx, val_idx, pool_idx = split_by_group(source.groups, spec.data.held_out, spec.data.seed)
    except SplitError as exc:
        raise JobError(str(exc)) from exc
    if not pool_idx:
        raise JobError(f"data.source: no training sources left once data.heldOut ({spec.data.held_out}) are held out")
    device = default_device()
    pool_u8 = source.images[pool_idx]
    if spec.data.selection_features == "clip":
        from trainers.data.select import clip_image_features

        features = clip_image_features(spec.data.clip_model)(pool_u8)
    else:  # the base's bottleneck with the concept's text, batched on this process's accelerator
        features = source_features(base, pool_u8, text, device)
    chosen = [pool_idx[i] for i in select_nearest_centres(features, spec.data.keep_fraction, seed=spec.data.seed)]
    order = [*test_idx, *val_idx, *chosen]

    # Ray from here to the end of training: synthesis (Ray Data), search (Tune), fine-tune (Train).
    session = contextlib.ExitStack()
    session.enter_context(ray_session(spec.resources))
    progress.stage("Synthesizing", f"{len(order)} of {len(source)} sources with {teacher.id}")
    synthesis = synthesize_pairs(
        teacher_spec=spec.teacher,
        concept=spec.concept,
        prompt=spec.prompt,
        sources=source.subset(order),
        store=spec.data.pairs_store or str(work / "pairs"),
        gpus_per_actor=spec.resources.gpus_per_worker,
    )
    keys = synthesis.keys
    progress.update(synthesis=synthesis.to_dict() | {"keys": len(keys)})
    src_u8, tgt_u8 = synthesis.load()
    # Pairs come back in source order, less any the CLIP filter dropped: map them to their splits.
    kept = set(keys)
    planned = plan_keys(source.subset(order).hashes, synthesis.teacher_id, spec.prompt, spec.concept)
    position = [i for i, k in enumerate(planned) if k in kept]
    n_test, n_val = len(test_idx), len(val_idx)
    # uint8 throughout (a quarter of float32), converted a batch at a time where it is used;
    # each split is its own compact copy, so Tune and Ray Train ship only that split.
    all_pairs = PairArrays(src_u8, tgt_u8, text[None].float())
    test, validation, train = (
        all_pairs.take([j for j, i in enumerate(position) if lo <= i < hi])
        for lo, hi in ((0, n_test), (n_test, n_test + n_val), (n_test + n_val, len(order)))
    )
    del src_u8, tgt_u8, all_pairs
    if not (len(test) and len(validation) and len(train)):
        raise JobError("teacher.clipModel: the CLIP filter dropped every pair of a split; lower teacher.clipThreshold")
    splits = {"train": len(train), "validation": len(validation), "test": len(test), "pool": len(pool_idx),
              "photos": source.photos, "seed": spec.data.seed,
              "method": "by photo, seeded; train = k-means selection of the pool's sources, before synthesis"}

    with session:
        progress.stage("Searching", f"{spec.search.trials} rank patterns, {spec.search.parallel_trials} at a time")
        progress.update(trialsDone=0, trialsTotal=spec.search.trials)

        def on_trial(done: int, pattern: dict | None, score: float | None) -> None:
            progress.update(trialsDone=done, lastTrial={"ranks": pattern, "psnr": score})

        gpus = spec.resources.gpus_per_worker
        report = run_search(
            base,
            train,
            validation,
            SearchSettings(
                ranks=list(spec.search.ranks),
                trials=spec.search.trials,
                parallel_trials=spec.search.parallel_trials,
                steps=spec.search.steps,
                batch_size=spec.training.batch_size,
                lr=spec.training.learning_rate,
                tolerance_db=spec.search.tolerance_db,
                early_stopping=spec.search.early_stopping,
                seed=spec.training.seed,
                cpus_per_trial=threads_per_trial(spec),
                gpus_per_trial=gpus_per_trial(spec),
                objective=objective.to_dict(),
            ),
            storage_path=str(work / "ray"),
            on_trial=on_trial,
        )
        ranks = report["chosen"]["ranks"]
        progress.update(trialsDone=len(report["trials"]), bestRanks=ranks)

        progress.stage("Training", f"LoRA ranks {ranks}, {spec.training.steps} steps")
        fine_tune = train_concept(
            base,
            train,
            ConceptTrainSettings(
                ranks=ranks,
                steps=spec.training.steps,
                batch_size=spec.training.batch_size,
                lr=spec.training.learning_rate,
                seed=spec.training.seed,
                max_seconds=spec.training.max_seconds,
                objective=objective.to_dict(),
                discriminator=disc_init,
                workers=spec.resources.workers,
                use_gpu=gpus > 0,
                cpus_per_worker=cpus_per_train_worker(spec),
                validation_every=spec.training.validation_every,
                plateau_patience=spec.training.plateau_patience,
            ),
            storage_path=str(work / "ray"),
            run_name=f"finetune-{spec.concept}-{int(time.time())}",
            validation=validation,
        )
        adapter_dir, train_seconds = fine_tune.adapter, fine_tune.seconds

    progress.stage("Evaluating", f"{len(test)} test pairs, {len(validation)} validation pairs")
    out = work / "adapter"
    out.mkdir(exist_ok=True)
    (out / "adapter_config.json").write_bytes((adapter_dir / "adapter_config.json").read_bytes())
    (out / "adapter_model.safetensors").write_bytes((adapter_dir / "adapter_model.safetensors").read_bytes())
    if spec.export.adapter_dtype == "fp16":
        from trainers.train.lora import cast_adapter

        cast_adapter(out / "adapter_model.safetensors", torch.float16)
    # Everything below reads the adapter as published (fp16 when stored so).
    model = load_adapter(base, out).to(device)
    base.to(device)
    # The held-out splits (data.heldOut photos' crops) as floats, outputs computed a batch at a time.
    test, (student, before) = predict((model, base), test, device)
    validation, (val_student, val_before) = predict((model, base), validation, device)
    model.cpu()
    base.cpu()
    test_metrics = split_metrics(student, test.target) | {"base_psnr": psnr(before, test.target)}
    metrics: dict = {
        "psnr": test_metrics["psnr"],  # the test split's, as every published figure
        "ssim": test_metrics["ssim"],
        "base_psnr": test_metrics["base_psnr"],
        "base_ssim": ssim(before, test.target),
        "search_best_psnr": report["best_psnr"],
        "test": test_metrics,
        "validation": {"psnr": psnr(val_student, validation.target), "base_psnr": psnr(val_before, validation.target)},
    }
    metrics.update(inception_metrics(student, test.target, inception))
    save_grid([test.source, test.target, before, student], out / "preview.png")
    write_search_report(report, out / "search.json")
    save_text_embedding(out, text, encoder.name, spec.prompt)  # apply needs no text encoder

    if spec.export.onnx:
        progress.stage("Exporting", "merge LoRA → ONNX, check against torch")
        merged = load_adapter(base, out).merge_and_unload()
        export = export_and_verify(ConceptGenerator(merged, text), out, res, fp16=spec.export.fp16)
        metrics.update(
            onnx_max_abs_diff=export.max_abs_diff,
            onnx_fp16_max_abs_diff=export.fp16_max_abs_diff,
            parameters=export.parameters,
            macs=export.macs,
            ort_cpu_latency_ms=export.ort_cpu_latency_ms,
        )
    adapter_bytes = (out / "adapter_model.safetensors").stat().st_size
    metrics["adapter_bytes"] = adapter_bytes
    metrics["student_bytes"] = base_path.stat().st_size  # the full fp32 student the adapter edits
    metrics["adapter_size_ratio"] = round(metrics["student_bytes"] / adapter_bytes, 2)

    manifest = AdapterManifest(
        concept=spec.concept,
        prompt=spec.prompt,
        base_model_digest=base_digest,
        ranks=ranks,
        metrics=metrics,
        pairs_used=len(train),
        pairs_synthesized=len(keys),
        training_seconds=round(train_seconds, 3),
        fine_tune=fine_tune.plateau,
        resolution=res,
        trainable_parameters=trainable_parameters(model) or _lora_parameters(model),
        spec=spec.model_dump(mode="json", by_alias=True),
        files=digest_files(out),
        teacher={"id": teacher.id, "filtered": synthesis.filtered, "images": synthesis.made,
                 "seconds": round(synthesis.seconds, 3), "sources": len(source), "selected": len(order)},
        synthesis=synthesis.to_dict(),
        splits=splits,
        objective=objective.describe(_shape_only(disc_init, objective, res)) | {
            "discriminator_init": "base" if disc_init else ("fresh" if objective.adversarial else None)},
        adapter_dtype=spec.export.adapter_dtype,
        total_seconds=round(time.perf_counter() - started, 3),
    )
    (out / MANIFEST_NAME).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True))

    entry = None
    if publish:
        progress.stage("Publishing", f"to {uri}")
        entry = catalog.publish(out, base_digest=base_digest, concept=spec.concept, keep_versions=spec.catalog.keep_versions)
        progress.update(result=_entry_dict(entry))
    progress.stage("Done", f"PSNR {metrics['psnr']:.2f} dB (base {metrics['base_psnr']:.2f} dB)")
    return DistillResult(folder=out, manifest=manifest, entry=entry)


def predict(models, pairs, device, batch_size: int = 64):
    """(the pairs as float tensors on the CPU, each model's outputs on them), a batch at a time on device."""
    from trainers.train.loop import PairTensors, batches

    sources, targets, texts = [], [], []
    outputs: list[list[torch.Tensor]] = [[] for _ in models]
    with torch.no_grad():
        for batch in batches(pairs, device, batch_size):
            sources.append(batch.source.cpu())
            targets.append(batch.target.cpu())
            texts.append(batch.text.cpu())
            for out, m in zip(outputs, models, strict=True):
                out.append(m(batch.source, batch.text).cpu())
    whole = PairTensors(torch.cat(sources), torch.cat(targets), torch.cat(texts))
    return whole, [torch.cat(out) for out in outputs]


def source_features(base, images_u8, text, device, batch_size: int = 64):
    """The base's pooled bottleneck of each source with the concept's text: float32 [N, C] on the CPU."""
    import torch

    from trainers.data.convert import to_tensor

    base.to(device)
    try:
        rows = []
        for i in range(0, len(images_u8), batch_size):
            x = to_tensor(images_u8[i : i + batch_size], device=device)
            with torch.no_grad():
                rows.append(base.bottleneck_features(x, text.to(device).expand(len(x), -1)).float().cpu())
        return torch.cat(rows)
    finally:
        base.cpu()


def _base_discriminator(base_path: Path, objective, resolution: int) -> tuple[dict | None, str | None]:
    """The discriminator shipped beside the base, as the fine-tune's start (or why not)."""
    if not objective.adversarial:
        return None, None
    from trainers.models.discriminator import layers_for
    from trainers.models.weights import discriminator_beside, discriminator_path

    try:
        disc = discriminator_beside(base_path, objective.ndf, layers_for(resolution))
    except ValueError as exc:
        return None, f"the base's {exc}, training at {resolution} px; the fine-tune starts a fresh one"
    if disc is None:
        return None, (f"the base has no discriminator beside it ({discriminator_path(base_path).name}); "
                      "the fine-tune starts a fresh one")
    return {"shape": {"ndf": disc.ndf, "n_layers": disc.n_layers}, "state": disc.state_dict()}, None


def _shape_only(disc_init: dict | None, objective, resolution: int):
    from trainers.models.discriminator import PatchDiscriminator
    from trainers.train.objective import new_discriminator

    if disc_init:
        return PatchDiscriminator(**disc_init["shape"])
    return new_discriminator(objective, resolution)


def _lora_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


def _entry_dict(entry: object) -> dict:
    if hasattr(entry, "model_dump"):
        return entry.model_dump(mode="json")  # type: ignore[no-any-return]
    return dict(entry.__dict__) if hasattr(entry, "__dict__") else {"entry": str(entry)}
