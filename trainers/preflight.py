"""Local paths a job reads, checked before any work: one line each, naming the field and the fix.

A path the spec or the command line names must be what it claims (a weights file that is
safetensors, a folder that is a folder); a device such as /dev/zero would otherwise be read
forever, and a text file given as weights ends deep in a loader with a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from e2gan_api.spec import ConceptAdapterSpec

GENERATOR_FORMAT = "e2gan-generator/v1"


class InputError(ValueError):
    """An unusable input path; the message is one line."""


def _is_uri(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _local(value: str) -> Path:
    return Path(value.removeprefix("file://")).expanduser()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _stat(path: Path, field: str, fix: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{field}: {path} does not exist; {fix}") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise InputError(f"{field}: {path} cannot be read ({reason}); {fix}") from None


def check_file(value: str, field: str, fix: str) -> Path:
    path = _local(value)
    info = _stat(path, field, fix)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{field}: {path} is {_kind(info.st_mode)}, not a file; {fix}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{field}: {path} is not readable; check its permissions")
    return path


def check_folder(value: str, field: str, fix: str) -> Path:
    path = _local(value)
    info = _stat(path, field, fix)
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(f"{field}: {path} is {_kind(info.st_mode)}, not a folder; {fix}")
    return path


def check_generator_weights(value: str, field: str = "base.weights") -> Path:
    """A readable .safetensors file whose metadata says it is an e2gan generator."""
    fix = "give the .safetensors file `e2gan base --out` wrote"
    path = check_file(value, field, fix)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:80]
        raise InputError(f"{field}: {path} is not a safetensors file ({detail}); {fix}") from None
    if meta.get("format") != GENERATOR_FORMAT or "config" not in meta:
        raise InputError(f"{field}: {path} is safetensors but not an e2gan generator (no generator config); {fix}")
    try:
        json.loads(meta["config"])
    except ValueError:
        raise InputError(f"{field}: {path} has a damaged generator config; {fix}") from None
    return path


def check_work_dir(value: Path | None) -> None:
    if value is None or not value.exists():
        return
    if not value.is_dir():
        raise InputError(f"--work-dir: {value} exists and is not a folder; give a folder (it is created if missing)")


def check_adapter_inputs(spec: ConceptAdapterSpec, *, catalog: str | None, work_dir: Path | None,
                         inception: str | None) -> None:
    """Everything `e2gan distill` reads from local paths, before any work starts."""
    if spec.base.weights and not _is_uri(spec.base.weights):
        check_generator_weights(spec.base.weights)
    source = spec.data.source
    if source.startswith("builtin://"):
        from trainers.sources.open import builtin_names

        if source.removeprefix("builtin://") not in builtin_names():
            known = ", ".join(f"builtin://{k}" for k in builtin_names())
            raise InputError(f"data.source: unknown builtin source {source!r}; use one of {known}")
    elif not _is_uri(source):
        check_folder(source, "data.source", "give a folder of JPEG/PNG images, or builtin://scenes")
    if spec.data.clip_model and not _is_uri(spec.data.clip_model):
        check_folder(spec.data.clip_model, "data.clipModel", "give the folder of a CLIP model")
    if inception:
        check_file(inception, "--inception", "give the ONNX Inception feature extractor file")
    check_work_dir(work_dir)
    target = catalog or spec.catalog.uri
    if not _is_uri(target):
        path = _local(target)
        if path.exists() and not path.is_dir():
            raise InputError(f"catalog: {path} exists and is not a folder; give a catalog folder or s3://bucket/prefix")
