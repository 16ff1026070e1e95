"""Fine-tune steps for the console: a Ray Train callback that writes the last reported step.

Ray Train calls `after_report` on its controller (an actor), not in the CLI's process; the
step goes through a small JSON file in the work folder that the console polls. Only used
for a local run with a console (a RayJob reports progress through the catalog instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray.train import UserCallback


class StepFile(UserCallback):
    def __init__(self, path: str) -> None:
        self.path = path

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        steps = [m["step"] for m in metrics if isinstance(m, dict) and isinstance(m.get("step"), (int, float))]
        if not steps:
            return
        tmp = f"{self.path}.tmp"
        try:
            Path(tmp).write_text(json.dumps({"step": int(max(steps))}))
            os.replace(tmp, self.path)
        except OSError:
            pass  # progress is advisory


def read_step(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
