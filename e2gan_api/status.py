"""Status of ConceptAdapter and ConceptBase resources: written by the operator, read by people and GitOps.

Conditions follow kstatus (`Ready`, `Reconciling`, `Stalled`) so Argo CD and Flux judge
health without custom scripts; `phase`, `trials`, `ranks`, `fidelity` and `published.version`
feed the printer columns of `kubectl get`. Every string, list and map is bounded, like the
spec, and unknown fields are ignored on read so an older operator can read a newer status.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Queued", "Suspended", "Running", "Ready", "Failed"]
# The trainer's stages as the job writes them into its progress object, Pending before it starts.
# A string, not an enum: a newer trainer may add a stage and its status must still be accepted.
STAGES = (
    "Pending", "Validating", "Selecting", "Synthesizing", "Searching", "Training", "Evaluating", "Exporting",
    "Publishing", "Done", "Failed",
)
STAGE_PATTERN = r"^[A-Z][A-Za-z]*$"
ConditionType = Literal["Ready", "Reconciling", "Stalled"]

# Same limits as metav1.Condition.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_MESSAGE = 4096


class StatusModel(BaseModel):
    """Base: camelCase on the wire; unknown fields ignored so status written by other versions still reads."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One kstatus condition (the shape of metav1.Condition)."""

    type: ConditionType = Field(
        description="Ready: the current spec is trained and published; Reconciling: work for the "
        "current spec is in progress; Stalled: it cannot progress without a change (see message)"
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown")
    observed_generation: int = Field(
        default=0, ge=0, le=2**53, description="metadata.generation this condition was computed from"
    )
    last_transition_time: str = Field(
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description="when the status last changed (RFC 3339)",
    )
    reason: str = Field(
        min_length=1,
        max_length=128,
        pattern=REASON_PATTERN,
        description="one CamelCase word from a fixed vocabulary, for machines",
    )
    message: str = Field(default="", max_length=MAX_MESSAGE, description="what happened and what to do, for people")


class Progress(StatusModel):
    """How far the training job is, as the job itself reports it (its progress object in the catalog store)."""

    percent: float = Field(default=0.0, ge=0.0, le=100.0, description="overall progress of the job in percent")
    trials_done: int = Field(default=0, ge=0, le=100_000, description="rank-search trials finished")
    trials_total: int = Field(default=0, ge=0, le=100_000, description="rank-search trials planned")
    best_ranks: dict[str, Annotated[int, Field(ge=0, le=4096)]] = Field(
        default_factory=dict,
        max_length=256,
        description="best LoRA rank per crucial layer found so far",
    )
    message: str = Field(default="", max_length=MAX_MESSAGE, description="the job's last progress message")


class Published(StatusModel):
    """Where the trained artifact was published in the catalog."""

    uri: str = Field(max_length=2048, description="URI of the published adapter or base folder")
    version: str = Field(max_length=64, description="catalog version of this concept")
    digest: str = Field(default="", max_length=128, description="content digest of the published files")
    base_digest: str = Field(
        default="", max_length=128, description="digest of the base weights the version was trained from"
    )


class VersionRef(StatusModel):
    """One catalog version published by this resource."""

    concept: str = Field(default="", max_length=63, description="concept the version was published under")
    version: str = Field(max_length=64, description="catalog version (for example v3)")
    base_digest: str = Field(default="", max_length=128, description="digest of its base weights")


class PinnedBase(StatusModel):
    """The ConceptBase version a ConceptAdapter trains from (pinned until the spec changes, unless base.follow)."""

    name: str = Field(max_length=63, description="the ConceptBase")
    version: str = Field(default="", max_length=64, description="its published version")
    uri: str = Field(max_length=2048, description="URI of its published weights")
    digest: str = Field(default="", max_length=128, description="content digest of the weights")
    inputs: str = Field(
        default="", max_length=64, description="digest of the spec the pin was made for (a spec change re-resolves it)"
    )
    pinned_at: str = Field(
        default="", max_length=64, json_schema_extra={"format": "date-time"}, description="when it was resolved"
    )


class CommonStatus(StatusModel):
    """Status fields shared by ConceptAdapter and ConceptBase."""

    observed_generation: int = Field(
        default=0, ge=0, le=2**53, description="the metadata.generation this status describes"
    )
    phase: Phase = Field(
        default="Pending",
        description="Pending, Queued (held by Kueue), Suspended, Running, Ready (published) or Failed (see "
        "the Stalled condition)",
    )
    stage: str = Field(
        default="Pending",
        max_length=32,
        pattern=STAGE_PATTERN,
        description="the stage the training job reports: " + ", ".join(STAGES),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        description="kstatus conditions: Ready, Reconciling, Stalled",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    ray_job_name: str = Field(default="", max_length=63, description="the RayJob training the current spec")
    ray_job_uid: str = Field(default="", max_length=64, description="UID of that RayJob (its progress is keyed by it)")
    catalog_uri: str = Field(
        default="", max_length=1024, description="the catalog this resource publishes to (spec or operator default)"
    )
    spec_digest: str = Field(
        default="", max_length=64, description="digest of the training inputs the RayJob was made from"
    )
    progress_key: str = Field(
        default="", max_length=512, description="key of the job's progress object in the catalog store"
    )
    progress: Progress | None = Field(default=None, description="progress of the current training job")
    published: Published | None = Field(default=None, description="the last version published by this resource")
    metrics: dict[str, Annotated[float, Field(ge=-1e12, le=1e12)]] = Field(
        default_factory=dict, max_length=64, description="numeric metrics of the published version"
    )
    fidelity: str = Field(default="", max_length=32, description="held-out fidelity of the published version")
    versions: list[VersionRef] = Field(
        default_factory=list,
        max_length=100,
        description="catalog versions this resource published, for people; deletion (deletionPolicy Delete) "
        "removes what the catalog records as owned by this resource, not this list",
    )


class ConceptAdapterStatus(CommonStatus):
    """Observed state of a ConceptAdapter."""

    trials: str = Field(default="", max_length=32, description="rank-search trials done/total")
    base: PinnedBase | None = Field(default=None, description="the ConceptBase version this adapter trains from")
    ranks: str = Field(default="", max_length=128, description="the chosen (or best so far) ranks, compactly")


class ConceptBaseStatus(CommonStatus):
    """Observed state of a ConceptBase."""

    concepts: int = Field(default=0, ge=0, le=256, description="concepts the base is trained on")
