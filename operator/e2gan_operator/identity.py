"""What a training run is: the digest that names its RayJob, and the key of its progress object.

The digest covers what the user set (fields left at their defaults are left out, so a release
that adds a field or a default does not retrain every Ready resource), the resource's identity
(namespace, name and UID: a recreated resource is a new run), the pinned base weights, the
retrain annotation, and TRAINING_SEMANTICS: bump it when a release changes what an unchanged
spec trains, and only then is everything trained again.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from e2gan_operator.rayjob import Trainer, canonical, training_inputs

# Version of what the trainer does with a spec; part of every digest.
TRAINING_SEMANTICS = 1
# Spec fields that never change the trained result besides those in rayjob.training_inputs.
_NOT_BASE_INPUTS = ("follow",)


def user_inputs(user_wire: dict[str, Any]) -> dict[str, Any]:
    """The user-set spec fields that change what is trained."""
    out = training_inputs(user_wire)
    if isinstance(out.get("base"), dict):
        out["base"] = {k: v for k, v in out["base"].items() if k not in _NOT_BASE_INPUTS}
    return out


def inputs_digest(
    trainer: Trainer, meta: dict[str, Any], user_wire: dict[str, Any], retrain: str
) -> str:
    """sha256 of the resource's identity, its user-set training inputs and the retrain token."""
    payload = {
        "semantics": TRAINING_SEMANTICS,
        "kind": trainer.kind,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "spec": user_inputs(user_wire),
        "retrain": retrain,
    }
    return hashlib.sha256(canonical(payload)).hexdigest()


def training_digest(inputs: str, base: dict[str, Any] | None) -> str:
    """sha256 of the inputs digest and the base weights pinned for it (None: builtin or explicit weights)."""
    pinned = {"uri": base.get("uri"), "digest": base.get("digest")} if base else None
    return hashlib.sha256(canonical({"inputs": inputs, "base": pinned})).hexdigest()


def new_progress_key(namespace: str, name: str) -> str:
    """A key no other RayJob ever had: recorded on the RayJob it is minted for, so progress and the
    result always belong to that one RayJob (a recreated resource or job never reads an old run's)."""
    return f"{namespace}/{name}/{secrets.token_hex(8)}"
