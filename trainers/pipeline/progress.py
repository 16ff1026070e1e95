"""Stage and progress reporting: to the console, and to the catalog for the operator.

The operator reads `progress/<key>.json` from the catalog store (no log scraping), so
every stage change and every finished trial is written there when a key is given.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("e2gan")

STAGES = ("Validating", "Synthesizing", "Selecting", "Searching", "Training", "Evaluating", "Exporting", "Publishing", "Done")


class ResultNotRecorded(RuntimeError):
    """The published result could not be written where the operator reads it: the job must fail."""


class Progress:
    def __init__(self, catalog: Any | None = None, key: str | None = None, echo: bool = True):
        self.catalog, self.key, self.echo = catalog, key, echo
        self.state: dict[str, Any] = {"stage": "Validating", "percent": 0, "message": "", "startedAt": time.time()}

    def update(self, **fields: Any) -> None:
        self.state.update(fields)
        self.state["updatedAt"] = time.time()
        if self.catalog is not None and self.key:
            try:
                self.catalog.write_progress(self.key, dict(self.state))
            except Exception as exc:
                if "result" in fields:  # the operator learns of the publication only from this write
                    raise ResultNotRecorded(
                        f"published, but the result could not be recorded at progress/{self.key}: {exc}"
                    ) from exc
                log.warning("could not write progress to the catalog: %s", exc)  # progress is advisory

    def stage(self, name: str, message: str = "") -> None:
        percent = int(100 * STAGES.index(name) / (len(STAGES) - 1)) if name in STAGES else self.state["percent"]
        if self.echo:
            print(f"[e2gan] {name}{': ' + message if message else ''}", flush=True)
        self.update(stage=name, percent=percent, message=message)

    def failed(self, reason: str) -> None:
        self.update(stage="Failed", message=reason)
