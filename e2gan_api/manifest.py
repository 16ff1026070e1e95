"""manifest.json: what a published adapter folder holds, written by the trainer.

The catalog verifies every file against `files`; the operator copies `metrics` and
`ranks` into the resource status; mobile apps read it to pick an adapter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_NAME = "manifest.json"
# Files an adapter folder may hold; weights are safetensors only (never pickle).
ADAPTER_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "model.onnx",
    "model_fp16.onnx",
    "preview.png",
    "search.json",
    "text_embedding.safetensors",
)


class FileDigest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class TeacherRecord(BaseModel):
    """The teacher that made the pairs: its id, and how many of its edits the CLIP filter dropped."""

    model_config = ConfigDict(extra="allow")
    id: str = ""
    filtered: int = Field(default=0, ge=0, description="pairs dropped by the CLIP filter (teacher.clipModel)")

    @model_validator(mode="before")
    @classmethod
    def _from_id(cls, data: object) -> object:
        return {"id": data} if isinstance(data, str) else data  # manifests once stored the id alone


class AdapterManifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: str = "e2gan-adapter/v1"
    concept: str
    prompt: str
    base_model_digest: str = Field(description="sha256 of the base weights file")
    ranks: dict[str, int] = Field(description="LoRA rank per crucial layer")
    # Flat numbers (psnr is the test split's) plus nested groups: `test` {psnr, psnr_ci95,
    # ssim, sharpness_ratio, ...} and `validation` {psnr}.
    metrics: dict[str, float | str | None | list[float] | dict[str, float | int | str | None | list[float]]] = Field(
        default_factory=dict
    )
    splits: dict[str, int | str] = Field(
        default_factory=dict, description="pairs per split: train, validation, test (disjoint, seeded random)"
    )
    objective: dict = Field(default_factory=dict, description="loss weights and the discriminator it trained against")
    adapter_dtype: str = Field(default="fp32", description="precision of the stored LoRA weights")
    pairs_used: int = 0
    pairs_synthesized: int = 0
    training_seconds: float = 0.0
    fine_tune: dict | None = Field(
        default=None,
        description="how the fine-tune ended: steps run (last_step), the best validation check "
        "(best_step, best), every check [step, psnr], and stopped_early when the plateau ended it",
    )
    resolution: int = 64
    trainable_parameters: int = 0
    spec: dict = Field(default_factory=dict, description="the ConceptAdapter spec that made it")
    files: dict[str, FileDigest] = Field(default_factory=dict)
    teacher: TeacherRecord = Field(default_factory=TeacherRecord)

    def content_digest(self) -> str:
        """Digest of the adapter's content (its files), for no-op re-publishing."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}:{self.files[name].sha256}\n".encode())
        return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_files(folder: Path, names: list[str] | None = None) -> dict[str, FileDigest]:
    """sha256 and size of every file in `folder` except the manifest itself."""
    names = names or sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    return {n: FileDigest(sha256=sha256_file(folder / n), size=(folder / n).stat().st_size) for n in names}
