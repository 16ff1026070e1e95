"""The ConceptAdapter and ConceptBase specs: the single source of truth.

The same models validate a `SPEC.yaml` given to `e2gan distill` and the `spec` of the
Kubernetes custom resources; the CRDs in `crds/` are generated from them
(`python -m e2gan_api.crd`). Field names are camelCase on the wire (Kubernetes
convention) and snake_case in Python. Every number, string and list is bounded so the
generated schema refuses hostile values before any code runs.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from e2gan_api.errors import first_error as first_error  # re-exported: callers import it from here

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

# An s3:// URI never has a `..` segment (object stores do not normalise it; it escapes prefixes).
S3_DOT_SEGMENT = r"/[.][.](/|$)"
# The CLI's catalog when the spec names none; on a cluster the operator's configured default applies.
CLI_DEFAULT_CATALOG = "./adapter-catalog"
# Memory per worker: a positive Kubernetes quantity (zero cannot match) of at most MAX_WORKER_MEMORY.
MEMORY_PATTERN = r"^(0*[1-9][0-9]*(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?$"
MAX_WORKER_MEMORY = "4Ti"
_QUANTITY_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# Immutable across removal too: `self == oldSelf` on catalog.uri does not run when the old value is absent.
CATALOG_IMMUTABLE_RULE = {
    "rule": "has(oldSelf.catalog) && has(oldSelf.catalog.uri) ? "
    "(has(self.catalog) && has(self.catalog.uri) && self.catalog.uri == oldSelf.catalog.uri) : "
    "!(has(self.catalog) && has(self.catalog.uri))",
    "message": "catalog.uri is immutable: it can be neither changed, added nor removed after creation "
    "(published versions live there); create another resource",
}

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]

# Prompts: not blank, no control characters but tab and newline (C0, DEL, C1), no bidi
# overrides or isolates (they hide text from reviewers). The CRD's `pattern` is RE2 (what
# the API server runs) and spells code points \x{..}; pydantic checks the same ranges with
# Python's re, which spells them \U........: one table, two spellings, nothing literal.
_PROMPT_BANNED = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))
# Unicode White_Space outside the banned ranges: a prompt needs one character that is not.
_PROMPT_BLANKS = ((0x09, 0x0A), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                  (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000))


def _prompt_pattern(spell: str) -> str:
    def ranges(table: tuple[tuple[int, int], ...]) -> str:
        return "".join(spell.format(lo) + ("" if lo == hi else "-" + spell.format(hi)) for lo, hi in table)

    banned = ranges(_PROMPT_BANNED)
    return f"^[^{banned}]*[^{banned}{ranges(_PROMPT_BLANKS)}][^{banned}]*$"


PROMPT_PATTERN = _prompt_pattern("\\x{{{:X}}}")  # RE2, in the CRD
_PROMPT_RE = re.compile(_prompt_pattern("\\U{:08X}"))
_PROMPT_BANNED_RE = re.compile("[" + "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in _PROMPT_BANNED) + "]")


def _prompt_rule(value: str) -> str:
    """The same rule as PROMPT_PATTERN, with a message that says what is wrong."""
    if _PROMPT_RE.fullmatch(value):
        return value
    bad = _PROMPT_BANNED_RE.search(value)
    if bad is not None:
        raise ValueError(
            f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()} (only tab and "
            "newline are allowed, and no bidi overrides); write the instruction as plain text"
        )
    raise ValueError("is blank; write the edit instruction, for example 'turn the photo into a pencil sketch'")


Prompt = Annotated[
    str,
    Field(min_length=1, max_length=1000, json_schema_extra={"pattern": PROMPT_PATTERN}),
    AfterValidator(_prompt_rule),
]


def _bare(annotation: Any) -> Any:
    """`int` for `Annotated[int, ...]`, unchanged otherwise."""
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def _nullable(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _as_api_server(value: Any, annotation: Any) -> Any:
    """An integral float given for an integer: the API server accepts `3.0` for an integer
    field (kube-openapi's type check, and kubectl's YAML to JSON already writes `3`)."""
    annotation = _bare(annotation)
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if typing.get_origin(annotation) is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [_as_api_server(v, item) for v in value]
    return value


def quantity_bytes(text: str) -> float:
    """Bytes of a Kubernetes quantity matching MEMORY_PATTERN's shape."""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", text)
    if not match or match.group(2) not in _QUANTITY_SUFFIX:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _QUANTITY_SUFFIX[match.group(2)]


class SpecModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused, values checked on assignment.

    Strict, like the API server with the generated CRD: no string for a number or a
    boolean, no number for a string, no boolean for an integer (a float field takes an
    integer, as a CRD `number` does). Two API-server rules are applied before validation
    so both doors admit the same documents: `null` for a field that is not nullable is
    dropped (the server prunes it, then defaults), and an integral float is an integer.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
        strict=True,
        allow_inf_nan=False,  # JSON (the API server's wire) has no NaN or infinity
    )

    @model_validator(mode="before")
    @classmethod
    def _like_the_api_server(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is None and isinstance(key, str):
                field = next((f for f in cls.model_fields.values() if f.alias == key), None)
            if field is None:
                out[key] = value  # unknown: refused by extra="forbid", with its name
            elif value is None and not _nullable(field.annotation):
                continue  # pruned by the API server; the default applies
            else:
                out[key] = _as_api_server(value, field.annotation)
        return out


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
    follow: Literal["pinned", "latest"] = Field(
        default="pinned",
        description="pinned: keep training from the ConceptBase version first resolved (recorded in "
        "status.base) until the spec or the retrain annotation changes; latest: retrain when the "
        "ConceptBase publishes a new version (rate-limited by the operator)",
    )


class TeacherSpec(SpecModel):
    """The diffusion (or built-in) model that edits source images into targets."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.kind == 'procedural' || has(self.model)",
                    "message": "teacher.model is required when teacher.kind is not procedural",
                },
                {
                    "rule": "self.scheduler != 'lcm' || (self.kind == 'sdedit' && has(self.lcmLora))",
                    "message": "teacher.scheduler lcm needs teacher.kind sdedit and teacher.lcmLora (an LCM-LoRA folder)",
                },
                {
                    "rule": "!has(self.lcmLora) || self.scheduler == 'lcm'",
                    "message": "teacher.lcmLora is only used with teacher.scheduler lcm",
                },
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
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="teacher precision; auto: bf16 on a GPU, fp32 on a CPU"
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="images per teacher call; unset: chosen from the GPU's free memory (4 on a CPU)",
    )
    compile: Literal["off", "default", "max-autotune"] = Field(
        default="off",
        description="torch.compile the UNet (GPU only) with fixed shapes; max-autotune adds CUDA "
        "graphs and kernel autotuning (longer warm-up)",
    )
    scheduler: Literal["default", "dpm-solver++", "unipc", "euler-a", "lcm"] = Field(
        default="default",
        description="sampler: default is the one the model folder ships; lcm (SDEdit only) needs lcmLora",
    )
    lcm_lora: str | None = Field(
        default=None,
        max_length=1024,
        description="local folder (or .safetensors file) of an LCM-LoRA for the teacher's UNet "
        "(with scheduler lcm: 2-8 steps, guidanceScale 1-2)",
    )
    resolution: int | None = Field(
        default=None,
        ge=8,
        le=1024,
        multiple_of=8,
        description="px the teacher edits at (sources are resized to it, edits anti-aliased down to "
        "the training resolution); unset: the model's native size (512 for SD-1.5-family)",
    )
    clip_model: str | None = Field(
        default=None,
        max_length=1024,
        description="local folder of a CLIP model (transformers CLIPModel): drop pairs whose edit "
        "does not follow the prompt (CLIP directional similarity below clipThreshold)",
    )
    clip_threshold: float = Field(
        default=0.2, ge=-1.0, le=1.0, description="minimum CLIP directional similarity of a kept pair"
    )

    @model_validator(mode="before")
    @classmethod
    def _compile_bool(cls, data: object) -> object:
        # compile was a boolean before; the CRD refuses one now, so the CLI does too, with the fix.
        if isinstance(data, dict) and isinstance(data.get("compile"), bool):
            value = "default" if data["compile"] else "off"
            raise ValueError(f"teacher.compile: {str(data['compile']).lower()} is the old boolean form — use {value}")
        return data

    @model_validator(mode="after")
    def _scheduler_needs(self) -> TeacherSpec:
        if self.scheduler == "lcm" and self.kind != "sdedit":
            raise ValueError("teacher.scheduler lcm is for teacher.kind sdedit only: pick another scheduler")
        if self.scheduler == "lcm" and not self.lcm_lora:
            raise ValueError("teacher.scheduler lcm needs teacher.lcmLora: the path of an LCM-LoRA folder")
        if self.lcm_lora and self.scheduler != "lcm":
            raise ValueError("teacher.lcmLora is only used with teacher.scheduler lcm: set both or neither")
        return self

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
                {
                    "rule": "self.cropScaleMin <= self.cropScaleMax",
                    "message": "data.cropScaleMin must not exceed data.cropScaleMax",
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
    crop_scale_min: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="photo sources are seeded random square crops (and flips); the smallest crop side, as a "
        "fraction of the photo's short side",
    )
    crop_scale_max: float = Field(
        default=1.0, gt=0.0, le=1.0, description="the largest crop side, as a fraction of the photo's short side"
    )

    @model_validator(mode="after")
    def _held_out_fits(self) -> DataSpec:
        if self.held_out >= self.pairs:
            raise ValueError(
                f"data.heldOut ({self.held_out}) must be smaller than data.pairs ({self.pairs})"
            )
        if self.selection_features == "clip" and not self.clip_model:
            raise ValueError("data.clipModel is required when data.selectionFeatures is 'clip'")
        if self.crop_scale_min > self.crop_scale_max:
            raise ValueError(
                f"data.cropScaleMin ({self.crop_scale_min}) must not exceed data.cropScaleMax "
                f"({self.crop_scale_max}) — for example 0.5 and 1.0"
            )
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
    validation_every: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="concept fine-tune: steps between checks of the generator's validation PSNR "
        "(a ConceptBase trains all its steps)",
    )
    plateau_patience: int = Field(
        default=4,
        ge=0,
        le=1000,
        description="concept fine-tune: checks in a row that gain under 0.05 dB before it stops "
        "and publishes its best check; 0 trains every step",
    )

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
        pattern=MEMORY_PATTERN,
        description=f"memory per worker as a Kubernetes quantity, more than 0 and at most {MAX_WORKER_MEMORY}",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"quantity(self).compareTo(quantity('{MAX_WORKER_MEMORY}')) <= 0",
                    "message": f"resources.memoryPerWorker must be at most {MAX_WORKER_MEMORY}",
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _memory_bounded(self) -> ResourcesSpec:
        if quantity_bytes(self.memory_per_worker) > quantity_bytes(MAX_WORKER_MEMORY):
            raise ValueError(
                f"resources.memoryPerWorker ({self.memory_per_worker}) must be at most {MAX_WORKER_MEMORY}"
            )
        return self


class ExportSpec(SpecModel):
    """What is exported next to the PEFT adapter."""

    onnx: bool = Field(default=True, description="export the merged generator to ONNX (fp32)")
    fp16: bool = Field(default=True, description="also export an fp16 ONNX model")
    adapter_dtype: Literal["fp16", "fp32"] = Field(
        default="fp16", description="precision the LoRA weights are stored in"
    )


class CatalogSpec(SpecModel):
    """Where the adapter is published."""

    uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=CATALOG_URI_PATTERN,
        description="catalog location: s3://bucket/prefix (or a local folder for the CLI). Unset: the "
        f"operator's configured default catalog on a cluster, {CLI_DEFAULT_CATALOG} for the CLI. Endpoint "
        "and credentials come from the operator's configuration, never from the spec",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "catalog.uri is immutable: published versions live there"},
                {
                    "rule": f"!self.startsWith('s3://') || !self.matches('{S3_DOT_SEGMENT}')",
                    "message": "catalog.uri: an s3:// URI must not contain '..' segments",
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _no_dot_segments(self) -> CatalogSpec:
        if self.uri and self.uri.startswith("s3://") and re.search(S3_DOT_SEGMENT, self.uri):
            raise ValueError(f"catalog.uri: {self.uri!r} must not contain '..' segments")
        return self
    keep_versions: int = Field(
        default=5, ge=1, le=1000, description="versions kept per concept when pruning"
    )


class RuntimeSpec(SpecModel):
    """How the Ray pods run (not what is trained): changing it never retrains."""

    profile: Name | None = Field(
        default=None,
        description="pod profile from the operator's configuration (volumes such as teacher weights, "
        "env, scheduling); unset: the cluster defaults",
    )


class ConceptAdapterSpec(SpecModel):
    """One concept: teacher pairs → selected data → rank search → LoRA → catalog."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [CATALOG_IMMUTABLE_RULE]})

    concept: Name = Field(
        description="concept id, a DNS label (for example pencil-sketch)",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "concept is immutable: create another ConceptAdapter"}
            ]
        },
    )
    prompt: Prompt = Field(description="edit instruction given to teacher and student")
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
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    def teacher_id(self) -> str:
        """The procedural teacher this spec resolves to (its own name or the concept)."""
        return self.teacher.name or self.concept


class BaseConceptSpec(SpecModel):
    """One concept the base model is trained on."""

    concept: Name = Field(description="concept id, a DNS label; also the procedural teacher's default name")
    prompt: Prompt = Field(description="edit instruction for this concept")
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)


class ConceptBaseSpec(SpecModel):
    """The multi-concept base generator, trained once and referenced by ConceptAdapters."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [CATALOG_IMMUTABLE_RULE]})

    concepts: list[BaseConceptSpec] = Field(
        min_length=1,
        max_length=256,
        description="concepts the base is trained on, each concept once",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(c, self.exists_one(d, d.concept == c.concept))",
                    "message": "concepts: each concept may appear only once",
                }
            ]
        },
    )
    data: DataSpec = Field(default_factory=DataSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    catalog: CatalogSpec = Field(default_factory=CatalogSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    width: int = Field(default=32, ge=8, le=256, description="generator base channel width")
    text_dim: int = Field(default=384, ge=8, le=4096, description="text embedding size")

    @model_validator(mode="after")
    def _unique_concepts(self) -> ConceptBaseSpec:
        seen: set[str] = set()
        for c in self.concepts:
            if c.concept in seen:
                raise ValueError(f"concepts: {c.concept!r} appears more than once; list each concept once")
            seen.add(c.concept)
        return self
