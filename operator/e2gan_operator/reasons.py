"""The fixed vocabulary of reasons: used both for Kubernetes Events and for condition reasons.

Alerting rules, dashboards and `kubectl get events --field-selector reason=...` depend on
these words, so they are a closed set: adding one is an API change, renaming one breaks users.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # The spec or its references.
    INVALID_SPEC = "InvalidSpec"
    BASE_NOT_FOUND = "BaseNotFound"
    WAITING_FOR_BASE = "WaitingForBase"
    BASE_FAILED = "BaseFailed"
    CONCEPT_TAKEN = "ConceptTaken"
    # The RayJob.
    RAYJOB_CREATED = "RayJobCreated"
    RAYJOB_ADOPTED = "RayJobAdopted"
    RAYJOB_SUPERSEDED = "RayJobSuperseded"
    RAYJOB_MISSING = "RayJobMissing"
    RAYJOB_NOT_OWNED = "RayJobNotOwned"
    QUEUED = "Queued"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    JOB_PENDING = "JobPending"
    RUNNING = "Running"
    STAGE_CHANGED = "StageChanged"
    TRAINING_FAILED = "TrainingFailed"
    RESULT_MISSING = "ResultMissing"
    # The catalog.
    PUBLISHED = "Published"
    UP_TO_DATE = "UpToDate"
    VERSION_MISSING = "VersionMissing"
    CATALOG_UNAVAILABLE = "CatalogUnavailable"
    # Deletion.
    VERSIONS_RETAINED = "VersionsRetained"
    VERSIONS_DELETED = "VersionsDeleted"
    DELETE_FAILED = "DeleteFailed"
    # The operator itself could not talk to the API server.
    API_ERROR = "ApiError"
    # The operator's own bookkeeping annotation was unreadable and was reset.
    ANNOTATION_RESET = "AnnotationReset"


# Reasons whose events are Warnings (the rest are Normal).
WARNINGS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.BASE_NOT_FOUND,
        Reason.BASE_FAILED,
        Reason.CONCEPT_TAKEN,
        Reason.RAYJOB_MISSING,
        Reason.RAYJOB_NOT_OWNED,
        Reason.TRAINING_FAILED,
        Reason.RESULT_MISSING,
        Reason.VERSION_MISSING,
        Reason.CATALOG_UNAVAILABLE,
        Reason.DELETE_FAILED,
        Reason.API_ERROR,
        Reason.ANNOTATION_RESET,
    }
)


def event_type(reason: Reason) -> str:
    return "Warning" if reason in WARNINGS else "Normal"
