"""Synthetic adapter folders (valid safetensors, manifest with digests) for tests and benchmarks."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest, digest_files

SAMPLE_BASE_DIGEST = "ab" * 32


def write_safetensors(path: Path, payload: bytes) -> None:
    """A minimal, valid safetensors file holding `payload` as one uint8 tensor."""
    header = json.dumps(
        {"lora.weight": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    )
    header += " " * (-len(header) % 8)  # the format pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + payload)


def make_adapter(
    folder: Path,
    concept: str = "pencil-sketch",
    *,
    base_digest: str = SAMPLE_BASE_DIGEST,
    seed: int = 0,
    weight_bytes: int = 4096,
    onnx_bytes: int = 2048,
) -> AdapterManifest:
    """Write an adapter folder whose content (and so digest) depends on `seed`."""
    rng = random.Random(f"{concept}/{seed}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "seed": seed}))
    write_safetensors(folder / "adapter_model.safetensors", rng.randbytes(weight_bytes))
    (folder / "model.onnx").write_bytes(rng.randbytes(onnx_bytes))
    (folder / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(256))
    manifest = AdapterManifest(
        concept=concept,
        prompt=f"make it {concept}",
        base_model_digest=base_digest,
        ranks={"up1": 4},
        metrics={"psnr": 20.0 + seed % 7},
        files=digest_files(folder),
    )
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=1))
    return manifest
