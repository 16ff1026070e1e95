"""kstatus conditions and status patches: Ready / Reconciling / Stalled from one observed outcome.

kstatus (used by Argo CD and Flux) reads `Reconciling=True` as in progress, `Stalled=True`
as failed, and checks `observedGeneration`; `Ready` is what people and Flux look at. One
`Outcome` sets all three consistently, and `lastTransitionTime` only moves when a status
flips, so re-computing an unchanged outcome writes nothing (no watch-event storm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from e2gan_operator.reasons import Reason

MAX_MESSAGE = 4096


@dataclass(frozen=True)
class Outcome:
    """Where a resource stands: which condition is True and why."""

    state: str
    """ready | reconciling | stalled | suspended"""
    reason: Reason
    message: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def conditions(outcome: Outcome, generation: int, previous: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The three conditions for `outcome`, keeping each one's transition time unless its status flips."""
    before = {c.get("type"): c for c in previous or [] if isinstance(c, dict)}
    flags = {
        "Ready": outcome.state == "ready",
        "Reconciling": outcome.state == "reconciling",
        "Stalled": outcome.state == "stalled",
    }
    stamp = now_iso()
    out = []
    for kind, on in flags.items():
        status = "True" if on else "False"
        old = before.get(kind) or {}
        # Every condition carries the outcome's reason (one vocabulary); the message goes on
        # Ready (the printer column) and on the condition that is True.
        out.append(
            {
                "type": kind,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": old.get("lastTransitionTime", stamp) if old.get("status") == status else stamp,
                "reason": outcome.reason.value,
                "message": _clip(outcome.message) if kind == "Ready" or on else "",
            }
        )
    return out


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch turning `old` into `new` (None for keys to remove); {} when equal."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                sub = merge_patch(old[key], value)
                if sub != {}:
                    patch[key] = sub
            else:
                patch[key] = value
    return patch
