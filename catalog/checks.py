"""Input checks done before anything is written: names, digests, weight formats, manifests."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from pydantic import ValidationError

from catalog.errors import CatalogError
from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest, sha256_file

CONCEPT = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS label, like the spec's Name
BASE_DIGEST = re.compile(r"^(sha256:)?([0-9a-f]{16,128})$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROGRESS_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Pickle-based formats execute code when loaded: never published, never served.
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
_MAX_SAFETENSORS_HEADER = 100 << 20


def check_concept(concept: str) -> str:
    if not isinstance(concept, str) or not CONCEPT.match(concept):
        raise CatalogError(f"concept {concept!r} is not a DNS label (lowercase letters, digits, '-')")
    return concept


def base_folder(base_digest: str) -> str:
    """The 16-hex folder name of a base model digest ('sha256:' prefix allowed)."""
    match = BASE_DIGEST.match(base_digest or "")
    if not match:
        raise CatalogError(f"base digest {base_digest!r} is not a hex sha256")
    return match.group(2)[:16]


def check_progress_key(key: str) -> str:
    parts = key.split("/") if isinstance(key, str) else []
    if not parts or len(parts) > 8 or not all(PROGRESS_SEGMENT.match(p) and ".." not in p for p in parts):
        raise CatalogError(f"progress key {key!r}: use '/'-separated names of letters, digits, '.', '_', '-'")
    return key


def check_safetensors(path: Path) -> None:
    """Refuse anything that does not start like a safetensors file (8-byte length + JSON header)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CatalogError(f"{path.name}: not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", head)
        if length < 2 or length > min(size - 8, _MAX_SAFETENSORS_HEADER):
            raise CatalogError(f"{path.name}: not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CatalogError(f"{path.name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CatalogError(f"{path.name}: not a safetensors file (header is not a mapping)")


def check_adapter_folder(folder: Path, *, base_digest: str, concept: str) -> AdapterManifest:
    """Load manifest.json and check every listed file against it; return the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogError(f"adapter folder {folder} does not exist")
    unsafe = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in UNSAFE_SUFFIXES)
    if unsafe:
        raise CatalogError(f"refusing pickle-based weights {', '.join(unsafe)}: publish safetensors only")
    try:
        manifest = AdapterManifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
    except FileNotFoundError:
        raise CatalogError(f"{folder}: no {MANIFEST_NAME}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(f"{MANIFEST_NAME}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if manifest.concept != concept:
        raise CatalogError(f"{MANIFEST_NAME} is for concept {manifest.concept!r}, not {concept!r}")
    if manifest.base_model_digest.removeprefix("sha256:") != base_digest.removeprefix("sha256:"):
        raise CatalogError(f"{MANIFEST_NAME} names another base model than {base_digest[:23]}…")
    for required in REQUIRED_FILES:
        if required not in manifest.files:
            raise CatalogError(f"{MANIFEST_NAME} does not list {required}")
    for name, expected in manifest.files.items():
        if not FILE_NAME.match(name) or name == MANIFEST_NAME:
            raise CatalogError(f"{MANIFEST_NAME} lists an invalid file name {name!r}")
        if Path(name).suffix.lower() in UNSAFE_SUFFIXES:
            raise CatalogError(f"refusing pickle-based weights {name}: publish safetensors only")
        path = folder / name
        if not path.is_file():
            raise CatalogError(f"{name} is listed in {MANIFEST_NAME} but missing from {folder}")
        if path.stat().st_size != expected.size or sha256_file(path) != expected.sha256:
            raise CatalogError(f"{name} does not match its sha256/size in {MANIFEST_NAME}")
        if name.endswith(".safetensors"):
            check_safetensors(path)
    return manifest


VERSION_ID = re.compile(r"^v([1-9][0-9]{0,8})$")
MANIFEST_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse_version(version: str) -> int:
    """3 for "v3"; CatalogError naming the value otherwise."""
    match = VERSION_ID.match(version or "") if isinstance(version, str) else None
    if not match:
        raise CatalogError(f"version {version!r} does not parse: use vN (v1, v2, ...)")
    return int(match.group(1))


def check_manifest_digest(digest: str) -> str:
    if not isinstance(digest, str) or not MANIFEST_DIGEST.match(digest):
        raise CatalogError(f"digest {digest!r} does not parse: use sha256:<64 hex digits>")
    return digest
