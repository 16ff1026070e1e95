"""Spec models shared by the trainers and the operator (pydantic only: no torch, no kubernetes)."""

from e2gan_api.spec import (
    BaseConceptSpec,
    ConceptAdapterSpec,
    ConceptBaseSpec,
    first_error,
)

GROUP = "e2gan.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "BaseConceptSpec",
    "ConceptAdapterSpec",
    "ConceptBaseSpec",
    "first_error",
]
