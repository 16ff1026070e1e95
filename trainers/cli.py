"""`e2gan`: train a base, distill a concept adapter, apply it, manage the catalog.

Every refusal (bad spec, missing images or weights, unreachable catalog) is one line on
stderr naming the field and the fix, exit code 2, and nothing written to the catalog.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path

EPILOG_DISTILL = """\
The spec is the `spec` of a ConceptAdapter resource (camelCase fields); a whole
ConceptAdapter manifest works too. The smallest spec:

  concept: pencil-sketch
  prompt: turn the photo into a pencil sketch

Defaults: the built-in base, a procedural teacher named after the concept, 96 pairs
from built-in scenes at 64 px, 50% kept by k-means, 4 rank patterns searched 2 at a
time, 300 fine-tune steps. See examples/concepts/ and `kubectl explain conceptadapter.spec`.
"""


class UsageError(Exception):
    """Refused input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="e2gan",
        description="E2GAN concept adapters: a text-conditioned base GAN, crucial-layer LoRA per concept "
        "with a rank search, minimal data by clustering, ONNX export and an adapter catalog.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "distill",
        help="train one concept adapter: synthesize → select → search → fine-tune → evaluate → export → publish",
        description="Train one concept adapter from a spec and publish it to a catalog.",
        epilog=EPILOG_DISTILL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("spec", nargs="?", help="spec YAML file (a ConceptAdapter spec or manifest); '-' reads stdin")
    d.add_argument("--spec-json-b64", help="the spec as base64 JSON (how the operator's RayJob passes it)")
    d.add_argument("--catalog", help="catalog folder or s3://bucket/prefix (default: the spec's catalog.uri)")
    d.add_argument("--work-dir", type=Path, help="scratch folder for pairs, Ray results and the adapter (default: a temp dir)")
    d.add_argument("--progress-key", help="write progress to the catalog under this key (used by the operator)")
    d.add_argument("--inception", help="ONNX Inception feature extractor for FID/KID (otherwise reported unavailable)")
    d.add_argument("--no-publish", action="store_true", help="build and check the adapter but do not publish it")

    b = sub.add_parser(
        "base",
        help="train the multi-concept base generator (Ray Train)",
        description="Train the text-conditioned base generator on many concepts. Rerunning with the same "
        "--storage resumes from the last checkpoint.",
    )
    b.add_argument("spec", nargs="?", help="ConceptBase spec YAML (default: the built-in procedural concepts)")
    b.add_argument("--spec-json-b64", help="the spec as base64 JSON (how the operator's RayJob passes it)")
    b.add_argument("--out", type=Path, default=Path("base.safetensors"), help="where to write the base weights (.safetensors)")
    b.add_argument("--catalog", help="also publish the weights to this catalog (folder or s3://bucket/prefix)")
    b.add_argument("--name", default="base", help="name recorded with the published weights (default: base)")
    b.add_argument("--progress-key", help="write progress to the catalog under this key (used by the operator)")
    b.add_argument("--storage", default="./runs/base", help="Ray Train storage (checkpoints) folder or s3:// URI")
    b.add_argument("--steps", type=int, help="override training.steps")
    b.add_argument("--minutes", type=float, help="override training.maxSeconds, in minutes")
    b.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")

    a = sub.add_parser(
        "apply",
        help="run an adapter on images",
        description="Apply a published adapter (a folder with manifest.json and the PEFT files) to images.",
    )
    a.add_argument("adapter", type=Path, help="adapter folder (see `e2gan catalog pull`)")
    a.add_argument("images", nargs="+", type=Path, help="JPEG/PNG images")
    a.add_argument("--out", type=Path, default=Path("edited"), help="output folder (default: ./edited)")
    a.add_argument("--base", type=Path, help="base weights (default: the built-in base); its digest must match the manifest")
    a.add_argument(
        "--max-side",
        type=int,
        default=1024,
        help="longest side an image is edited at (default 1024); each photo keeps its own size up to this, "
        "rounded down to a multiple of 8",
    )

    sub.add_parser("teachers", help="list the built-in procedural teachers")

    from catalog.cli import add_parser as add_catalog_parser

    add_catalog_parser(sub)
    return p


def _spec_from_b64(text: str, model, kind: str):
    from e2gan_api.load import SpecError, spec_dict
    from e2gan_api.spec import first_error

    try:
        document = json.loads(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise SpecError("--spec-json-b64: not base64-encoded JSON") from exc
    try:
        return model.model_validate(spec_dict(document, kind))
    except SpecError:
        raise
    except ValueError as exc:
        raise SpecError(first_error(exc)) from exc


def _load_adapter_spec(args: argparse.Namespace):
    from e2gan_api.load import SpecError, load_spec
    from e2gan_api.spec import ConceptAdapterSpec

    if args.spec_json_b64:
        try:
            return _spec_from_b64(args.spec_json_b64, ConceptAdapterSpec, "ConceptAdapter")
        except SpecError as exc:
            raise UsageError(str(exc)) from exc
    if not args.spec:
        raise UsageError("distill: give a spec file (or --spec-json-b64); see `e2gan distill --help`")
    path = args.spec
    if path == "-":
        import tempfile

        tmp = Path(tempfile.mkstemp(suffix=".yaml")[1])
        tmp.write_text(sys.stdin.read())
        path = tmp
    try:
        return load_spec(path, ConceptAdapterSpec)
    except SpecError as exc:
        raise UsageError(str(exc)) from exc


def cmd_distill(args: argparse.Namespace) -> int:
    spec = _load_adapter_spec(args)
    from trainers.pipeline.distill import JobError, distill

    try:
        result = distill(
            spec,
            catalog_uri=args.catalog,
            work_dir=args.work_dir,
            progress_key=args.progress_key,
            inception=args.inception,
            publish=not args.no_publish,
        )
    except JobError as exc:
        raise UsageError(str(exc)) from exc
    m = result.manifest
    summary = {
        "concept": m.concept,
        "ranks": m.ranks,
        "psnr": round(float(m.metrics["psnr"]), 3),
        "base_psnr": round(float(m.metrics["base_psnr"]), 3),
        "ssim": round(float(m.metrics["ssim"]), 4),
        "pairs_used": m.pairs_used,
        "trainable_parameters": m.trainable_parameters,
        "adapter_bytes": m.metrics.get("adapter_bytes"),
        "folder": str(result.folder),
    }
    if result.entry is not None:
        entry = result.entry
        summary["version"] = getattr(entry, "version", None)
        summary["uri"] = getattr(entry, "uri", None)
    print(json.dumps(summary))
    return 0


def cmd_base(args: argparse.Namespace) -> int:
    from e2gan_api.load import SpecError, load_spec
    from e2gan_api.spec import ConceptBaseSpec
    from trainers.pipeline.base import default_base_spec, run_base

    try:
        if args.spec_json_b64:
            spec = _spec_from_b64(args.spec_json_b64, ConceptBaseSpec, "ConceptBase")
        else:
            spec = load_spec(args.spec, ConceptBaseSpec) if args.spec else default_base_spec()
    except SpecError as exc:
        raise UsageError(str(exc)) from exc
    if args.steps:
        spec.training.steps = args.steps
    if args.minutes:
        spec.training.max_seconds = max(1, int(args.minutes * 60))
    if args.out.suffix != ".safetensors":
        raise UsageError("--out: base weights are written as .safetensors; give a path ending in .safetensors")
    from trainers.pipeline.base import BaseJobError

    try:
        path, state = run_base(spec, args.out, args.storage, catalog_uri=args.catalog, name=args.name,
                               progress_key=args.progress_key, checkpoint_every=args.checkpoint_every)
    except BaseJobError as exc:
        raise UsageError(str(exc)) from exc
    print(json.dumps({"out": str(path), **state}))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from trainers.pipeline.apply import ApplyError, apply_adapter

    # A bar only for many images and only on a terminal (tqdm's disable=None); paths go to stdout.
    with tqdm(total=len(args.images), unit="image", disable=None if len(args.images) > 1 else True) as bar:
        try:
            written = apply_adapter(
                args.adapter, args.images, args.out, args.base, max_side=args.max_side, on_image=lambda _: bar.update()
            )
        except ApplyError as exc:
            raise UsageError(str(exc)) from exc
    for path in written:
        print(path)
    return 0


def cmd_teachers(args: argparse.Namespace) -> int:
    from trainers.teachers import PROCEDURAL_TEACHERS

    for name, effect in sorted(PROCEDURAL_TEACHERS.items()):
        print(f"{name:16s} {getattr(effect, 'description', '')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read at huggingface_hub import: set first
    from trainers.pipeline.resources import prepare_ray_environment

    prepare_ray_environment()  # before anything imports ray
    args = _parser().parse_args(argv)
    handlers = {"distill": cmd_distill, "base": cmd_base, "apply": cmd_apply, "teachers": cmd_teachers}
    try:
        if args.command == "catalog":
            return int(args.handler(args) or 0)
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"e2gan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("e2gan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
