"""`e2gan`: train a base, distill a concept adapter, apply it, manage the catalog.

Every refusal (bad spec, missing images or weights, unreachable catalog) is one line on
stderr naming the field and the fix, exit code 2, and nothing written to the catalog.
`e2gan distill` is quiet: one live display (plain lines when not on a terminal), then a
short summary; Ray's own output goes to WORK_DIR/logs/ (`--verbose` shows it, `--json`
prints only the final JSON line).
"""

from __future__ import annotations

import argparse
import json
import math
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

The embedded default (a few minutes on a laptop CPU, no weights, no network), then its
adapter on your own image:

  e2gan distill examples/embedded/pencil-sketch.yaml --catalog ./adapter-catalog
  e2gan catalog pull pencil-sketch ./adapter --catalog ./adapter-catalog && e2gan apply ./adapter photo.jpg

Check a spec without training: e2gan distill SPEC.yaml --check
"""


class UsageError(Exception):
    """Refused input: printed as one line, exit code 2."""


class JobFailed(Exception):
    """The job failed after it started (not the input's fault): one line, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    # argparse's usage errors as one line, exit 2 (subcommands inherit the class)
    from catalog.cli import OneLineParser

    p = OneLineParser(
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
    d.add_argument("--check", action="store_true", help="check the spec and the paths it names, then exit (no training)")
    d.add_argument("-v", "--verbose", action="store_true",
                   help="show Ray's, Tune's and the workers' output live (with --json: on stderr)")
    d.add_argument("--json", action="store_true", help="print only the final JSON summary line on stdout (for scripts)")

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
    b.add_argument("--init", type=Path, help="start from these base weights (and the discriminator beside them, if "
                   "any) instead of random ones: continue a base, e.g. with the GAN objective; a resume ignores it")

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


def _read_spec(path: str | None, spec_b64: str | None, model, command: str):
    """The spec from --spec-json-b64, a file or stdin ('-'), or UsageError with one line."""
    from e2gan_api.load import MAX_BYTES, SpecError, load_spec, load_spec_b64, load_spec_bytes

    try:
        if spec_b64:
            return load_spec_b64(spec_b64, model)
        if not path:
            raise UsageError(f"{command}: give a spec file (or --spec-json-b64); see `e2gan {command} --help`")
        if path == "-":  # read at most the cap, never a temp file
            return load_spec_bytes(sys.stdin.buffer.read(MAX_BYTES + 1), model, "stdin")
        return load_spec(path, model)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def _load_adapter_spec(args: argparse.Namespace):
    from e2gan_api.spec import ConceptAdapterSpec
    from trainers.preflight import InputError, check_adapter_inputs

    spec = _read_spec(args.spec, args.spec_json_b64, ConceptAdapterSpec, "distill")
    try:
        check_adapter_inputs(spec, catalog=args.catalog, work_dir=args.work_dir, inception=args.inception)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    return spec


def _summary_json(result) -> dict:
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
    for key in ("psnr_ci_low", "psnr_ci_high"):
        if m.metrics.get(key) is not None:
            summary[key] = round(float(m.metrics[key]), 3)
    if result.entry is not None:
        summary["version"] = getattr(result.entry, "version", None)
        summary["uri"] = getattr(result.entry, "uri", None)
    return summary


def cmd_distill(args: argparse.Namespace) -> int:
    import tempfile

    spec = _load_adapter_spec(args)
    if args.check:
        print(f"e2gan: {spec.concept}: the spec and the paths it names are usable")
        return 0
    from trainers.pipeline.progress import console_for, use_console
    from trainers.pipeline.quiet import job_output
    from trainers.pipeline.summary import summary_lines

    work = args.work_dir or Path(tempfile.mkdtemp(prefix=f"e2gan-{spec.concept}-"))
    with job_output(work / "logs", verbose=args.verbose, json_only=args.json) as terminal:
        console = console_for(terminal.out, json_only=args.json)
        console.watch_steps(work / "steps.json", spec.training.steps)
        console.stage("Starting", "loading torch and Ray")
        use_console(console)
        try:
            result = _run_distill(spec, args, work, terminal)
        finally:
            console.finish()
            use_console(None)
        summary = _summary_json(result)
        if args.json:
            terminal.out.write(json.dumps(summary) + "\n")
        else:
            for line in summary_lines(result, console, terminal.log_path):
                terminal.out.write(line + "\n")
        terminal.out.flush()
    return 0


def _run_distill(spec, args: argparse.Namespace, work: Path, terminal):
    """distill(), with refusals as UsageError and any other failure as one line plus the log."""
    from trainers.pipeline.distill import JobError, distill

    try:
        return distill(
            spec,
            catalog_uri=args.catalog,
            work_dir=work,
            progress_key=args.progress_key,
            inception=args.inception,
            publish=not args.no_publish,
        )
    except JobError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        if terminal.log_path is None:
            raise  # --verbose: the traceback is the detail
        import traceback

        traceback.print_exc()  # into the log (fd 2 points there)
        detail = " ".join(str(exc).split())[:200]
        raise JobFailed(f"distill failed: {type(exc).__name__}: {detail} (details in {terminal.log_path})") from None


def _override_training(spec, args: argparse.Namespace) -> None:
    """--steps and --minutes, held to the spec's own bounds (the model validates on assignment)."""
    from pydantic import ValidationError

    for flag, field, value in (
        ("--steps", "steps", args.steps),
        ("--minutes", "max_seconds", None if args.minutes is None else args.minutes * 60),
    ):
        if value is None:
            continue
        if not math.isfinite(value):
            raise UsageError(f"{flag}: {value!r} is not a number; give a finite value")
        try:
            setattr(spec.training, field, max(1, int(value)) if field == "max_seconds" else value)
        except ValidationError as exc:
            bound = exc.errors()[0]["msg"].lower()
            raise UsageError(f"{flag}: {bound} (training.{field}); give a value in the spec's range") from None


def cmd_base(args: argparse.Namespace) -> int:
    from e2gan_api.spec import ConceptBaseSpec
    from trainers.pipeline.base import default_base_spec, run_base

    if args.spec or args.spec_json_b64:
        spec = _read_spec(args.spec, args.spec_json_b64, ConceptBaseSpec, "base")
    else:
        spec = default_base_spec()
    _override_training(spec, args)
    if args.out.suffix != ".safetensors":
        raise UsageError("--out: base weights are written as .safetensors; give a path ending in .safetensors")
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every: {args.checkpoint_every} is not a step count; give 1 or more (default 200)")
    from trainers.pipeline.base import BaseJobError

    try:
        path, state = run_base(spec, args.out, args.storage, catalog_uri=args.catalog, name=args.name,
                               progress_key=args.progress_key, checkpoint_every=args.checkpoint_every,
                               init=args.init)
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
    except JobFailed as exc:
        print(f"e2gan: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("e2gan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
