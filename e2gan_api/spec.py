"""The ConceptAdapter and ConceptBase specs: the single source of truth.

The same models validate a `SPEC.yaml` given to `e2gan distill` and the `spec` of the
Kubernetes custom resources; the CRDs in `crds/` are generated from them
(`python -m e2gan_api.crd`). Field names are camelCase on the wire (Kubernetes
convention) and snake_case in Python. Every number, string and list is bounded so the
generated schema refuses hostile values before any code runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

# The E2GAN generator down-samples by 2**DOWNSAMPLINGS; every resolution must divide.
DOWNSAMPLINGS = 3
RESOLUTION_MULTIPLE = 2**DOWNSAMPLINGS

# Names are DNS-1123 labels so they can be Kubernetes names and catalog path segments.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A catalog is a local folder or an s3://bucket/prefix URI.
CATALOG_URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?"
    r"|(file://)?/?[A-Za-z0-9._][A-Za-z0-9._/-]*)$"
)

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]


class SpecModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused, values checked on assignment."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )


class BaseModelRef(SpecModel):
    """Which base generator the concept adapter is trained from."""

    name: Name = Field(
        default="builtin",
        description="name of a ConceptBase resource in the same namespace, or 'builtin' for the "
        "base model shipped with the project",
    )
    weights: str | None = Field(
        default=None,
        max_length=1024,
        description="explicit path or URI of the base weights (a .safetensors file); overrides "
        "the ConceptBase lookup. Used by the trainer image, never fetched by the operator",
    )


class TeacherSpec(SpecModel):
    """The diffusion (or built-in) model that edits source images into targets."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.kind == 'procedural' || has(self.model)",
                    "message": "teacher.model is required when teacher.kind is not procedural",
                }
            ]
        }
    )

    kind: Literal["procedural", "instruct-pix2pix", "sdedit"] = Field(
        default="procedural",
        description="procedural: built-in deterministic CPU edits (for tests and the embedded "
        "default); instruct-pix2pix or sdedit: a diffusers pipeline loaded from 'model'",
    )
    name: str | None = Field(
        default=None,
        max_length=63,
        description="procedural teacher id (for example pencil-sketch); defaults to the concept",
    )
    model: str | None = Field(
        default=None,
        max_length=1024,
        description="local folder of a diffusers pipeline (model_index.json, unet/, vae/, "
        "text_encoder/, tokenizer/, scheduler/) or a hub id (needs network)",
    )
    steps: int = Field(default=20, ge=1, le=200, description="denoising steps per edit")
    guidance_scale: float = Field(default=7.5, ge=0.0, le=50.0, description="text guidance")
    image_guidance_scale: float = Field(
        default=1.5, ge=0.0, le=20.0, description="image guidance (InstructPix2Pix only)"
    )
    strength: float = Field(
        default=0.6, gt=0.0, le=1.0, description="noise strength (SDEdit img2img only)"
    )
    dtype: Literal["fp32", "fp16", "bf16"] = Field(
        default="fp32", description="teacher precision; fp16/bf16 on GPU"
    )
    batch_size: int = Field(default=4, ge=1, le=256, description="images per teacher call")
    compile: bool = Field(default=False, description="torch.compile the UNet (GPU only)")

    @model_validator(mode="after")
    def _model_for_diffusion(self) -> TeacherSpec:
        if self.kind != "procedural" and not self.model:
            raise ValueError(
                f"teacher.model is required for teacher.kind={self.kind!r}: give a local "
                "diffusers pipeline folder or a hub id"
            )
        return self


class DataSpec(SpecModel):
    """Where source images come from and how many pairs to synthesize and keep."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.heldOut < self.pairs", "message": "data.heldOut must be smaller than data.pairs"},
                {
                    "rule": "self.selectionFeatures != 'clip' || has(self.clipModel)",
                    "message": "data.clipModel is required when data.selectionFeatures is clip",
                },
            ]
        }
    )

    source: str = Field(
        default="builtin://scenes",
        max_length=1024,
        description="builtin://scenes (procedural scenes), a local folder of JPEG/PNG images, "
        "or s3://bucket/prefix",
    )
    pairs: int = Field(default=96, ge=2, le=100_000, description="pairs to synthesize")
    held_out: int = Field(
        default=16,
        ge=2,
        le=10_000,
        description="pairs kept aside, drawn at random with the seed and split in two disjoint halves: "
        "validation (scores search trials and early stopping) and test (the only source of the "
        "published metrics)",
    )
    keep_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="fraction of training pairs kept by clustering (nearest to k-means centres)",
    )
    selection_features: Literal["base", "clip"] = Field(
        default="base",
        description="features clustered for selection: the base generator's bottleneck, or CLIP "
        "image features (needs clipModel)",
    )
    clip_model: str | None = Field(
        default=None, max_length=1024, description="local path of a CLIP model for selection"
    )
    pairs_store: str | None = Field(
        default=None,
        max_length=1024,
        description="where synthesized pairs are cached (local path or s3:// URI); defaults to "
        "a folder beside the catalog",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of sources and pairs")

    @model_validator(mode="after")
    def _held_out_fits(self) -> DataSpec:
        if self.held_out >= self.pairs:
            raise ValueError(
                f"data.heldOut ({self.held_out}) must be smaller than data.pairs ({self.pairs})"
            )
        if self.selection_features == "clip" and not self.clip_model:
            raise ValueError("data.clipModel is required when data.selectionFeatures is 'clip'")
        return self


class SearchSpec(SpecModel):
    """Rank search over the crucial layers (Ray Tune)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.parallelTrials <= self.trials",
                    "message": "search.parallelTrials must not exceed search.trials",
                }
            ]
        }
    )

    ranks: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=lambda: [2, 4, 8],
        min_length=1,
        max_length=8,
        description="candidate LoRA ranks; each crucial layer draws its rank from this list",
    )
    trials: int = Field(default=4, ge=1, le=256, description="rank patterns tried")
    parallel_trials: int = Field(
        default=2, ge=1, le=64, description="trials run at once (at most trials)"
    )
    steps: int = Field(default=60, ge=1, le=100_000, description="training steps per trial")
    tolerance_db: float = Field(
        default=0.25,
        ge=0.0,
        le=10.0,
        description="pick the cheapest pattern whose held-out PSNR is within this many dB of "
        "the best",
    )
    early_stopping: bool = Field(default=True, description="stop weak trials early (ASHA)")
    gpus_per_trial: float | None = Field(
        default=None,
        gt=0.0,
        le=16.0,
        description="GPUs each search trial reserves (fractions share a GPU, so parallelTrials is "
        "not capped by the GPU count); default 0.25 when the job has GPUs, none otherwise",
    )

    @model_validator(mode="after")
    def _parallel_fits(self) -> SearchSpec:
        if self.parallel_trials > self.trials:
            raise ValueError(
                f"search.parallelTrials ({self.parallel_trials}) must not exceed search.trials "
                f"({self.trials})"
            )
        return self


class TrainingSpec(SpecModel):
    """Budget and shape of the final fine-tune."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.resolution % {RESOLUTION_MULTIPLE} == 0",
                    "message": f"training.resolution must be a multiple of {RESOLUTION_MULTIPLE}",
                }
            ]
        }
    )

    resolution: int = Field(
        default=64,
        ge=RESOLUTION_MULTIPLE,
        le=1024,
        description=f"training and export resolution in pixels; a multiple of {RESOLUTION_MULTIPLE}",
    )
    steps: int = Field(default=300, ge=1, le=1_000_000, description="fine-tune steps")
    batch_size: int = Field(default=8, ge=1, le=1024, description="images per step")
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0, description="Adam learning rate")
    adversarial_weight: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        description="weight of the conditional PatchGAN loss (0 disables the discriminator)",
    )
    l1_weight: float = Field(
        default=100.0, ge=0.0, le=10_000.0, description="weight of the L1 loss to the teacher (pix2pix: 100)"
    )
    gan_loss: Literal["lsgan", "hinge"] = Field(default="lsgan", description="adversarial loss form")
    discriminator_learning_rate: float = Field(
        default=2e-4, gt=0.0, le=1.0, description="Adam learning rate of the discriminator"
    )
    ema_decay: float = Field(
        default=0.99, ge=0.0, lt=1.0, description="decay of the generator's weight EMA (0 disables it)"
    )
    perceptual_weights: str | None = Field(
        default=None,
        max_length=1024,
        description="path of a VGG-style feature network in safetensors (torchvision's "
        "features.N.weight names) for a perceptual loss; never downloaded",
    )
    perceptual_weight: float = Field(
        default=1.0, ge=0.0, le=1000.0, description="weight of the perceptual loss (with perceptualWeights)"
    )
    max_seconds: int = Field(
        default=3600, ge=1, le=7 * 24 * 3600, description="wall-clock cap of the fine-tune"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="training seed")

    @model_validator(mode="after")
    def _resolution_divides(self) -> TrainingSpec:
        if self.resolution % RESOLUTION_MULTIPLE:
            raise ValueError(
                f"training.resolution ({self.resolution}) must be a multiple of "
                f"{RESOLUTION_MULTIPLE} (the generator down-samples {DOWNSAMPLINGS} times)"
            )
        return self


class ResourcesSpec(SpecModel):
    """Ray cluster shape the operator requests for this job."""

    workers: int = Field(default=1, ge=1, le=256, description="Ray worker pods")
    gpus_per_worker: int = Field(default=0, ge=0, le=16, description="GPUs per worker (0 = CPU)")
    cpus_per_worker: int = Field(default=2, ge=1, le=256, description="CPUs per worker")
    memory_per_worker: str = Field(
        default="8Gi",
        max_length=16,
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        description="memory per worker as a Kubernetes quantity",
    )


class ExportSpec(SpecModel):
    """What is exported next to the PEFT adapter."""

    onnx: bool = Field(default=True, description="export the merged generator to ONNX (fp32)")
    fp16: bool = Field(default=True, description="also export an fp16 ONNX model")
    adapter_dtype: Literal["fp16", "fp32"] = Field(
        default="fp16", description="precision the LoRA weights are stored in"
    )


class CatalogSpec(SpecModel):
    """Where the adapter is published."""

    uri: str = Field(
        default="./adapter-catalog",
        min_length=1,
        max_length=1024,
        pattern=CATALOG_URI_PATTERN,
        description="catalog location: a local folder or s3://bucket/prefix (endpoint and "
        "credentials come from the operator's configuration, never from the spec)",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "catalog.uri is immutable: published versions live there"}
            ]
        },
    )
    keep_versions: int = Field(
        default=5, ge=1, le=1000, description="versions kept per concept when pruning"
    )


class ConceptAdapterSpec(SpecModel):
    """One concept: teacher pairs → selected data → rank search → LoRA → catalog."""

    concept: Name = Field(
        description="concept id, a DNS label (for example pencil-sketch)",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "concept is immutable: create another ConceptAdapter"}
            ]
        },
    )
    prompt: str = Field(
        min_length=1, max_length=1000, description="edit instruction given to teacher and student"
    )
    base: BaseModelRef = Field(default_factory=BaseModelRef)
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    catalog: CatalogSpec = Field(default_factory=CatalogSpec)
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="on deletion of the resource: Retain keeps published versions; Delete "
        "removes them and their index entries",
    )
    suspend: bool = Field(
        default=False, description="pause: the RayJob is created or kept suspended while true (KubeRay suspend)"
    )

    def teacher_id(self) -> str:
        """The procedural teacher this spec resolves to (its own name or the concept)."""
        return self.teacher.name or self.concept


class BaseConceptSpec(SpecModel):
    """One concept the base model is trained on."""

    concept: Name = Field(description="concept id, a DNS label; also the procedural teacher's default name")
    prompt: str = Field(min_length=1, max_length=1000, description="edit instruction for this concept")
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)


class ConceptBaseSpec(SpecModel):
    """The multi-concept base generator, trained once and referenced by ConceptAdapters."""

    concepts: list[BaseConceptSpec] = Field(
        min_length=1, max_length=256, description="concepts the base is trained on"
    )
    data: DataSpec = Field(default_factory=DataSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    catalog: CatalogSpec = Field(default_factory=CatalogSpec)
    width: int = Field(default=32, ge=8, le=256, description="generator base channel width")
    text_dim: int = Field(default=384, ge=8, le=4096, description="text embedding size")


def first_error(exc: Exception) -> str:
    """One line naming the field and the fix, from a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    err = errors()[0]
    loc = ".".join(to_camel(str(p)) if isinstance(p, str) else str(p) for p in err["loc"])
    msg = re.sub(r"^Value error, ", "", err["msg"])
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown field; remove it or check its spelling"
    return f"{loc}: {msg}" if loc else msg
