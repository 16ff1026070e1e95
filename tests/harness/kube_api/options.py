"""Per-request options and results of the API machinery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Options:
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore, Warn or Strict: what to do with unknown and duplicate fields
    duplicate_fields: list[str] = field(default_factory=list)  # paths duplicated in the request body
    # RBAC of the requesting user for admission plugins: None when allowed, else the reason;
    # None for the admin and anonymous requests, which nothing checks.
    authorize: Callable[[Any], str | None] | None = None


@dataclass
class Result:
    code: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
