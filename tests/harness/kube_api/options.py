"""Per-request options and results of the API machinery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Options:
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore, Warn or Strict: what to do with unknown and duplicate fields
    duplicate_fields: list[str] = field(default_factory=list)  # paths duplicated in the request body


@dataclass
class Result:
    code: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
