"""Structured logs: one JSON object per line (E2GAN_LOG_FORMAT=json) or kopf's text format.

kopf attaches the object a message is about as `record.k8s_ref`; it becomes `namespace`
and `name` keys so log pipelines can filter by resource without parsing messages.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "k8s_skip", "settings"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            for key in ("namespace", "name", "kind"):
                if ref.get(key):
                    out[key] = ref[key]
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "k8s_ref" and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(log_format: str) -> None:
    """Switch the root handlers (installed by `kopf run`) to JSON; text keeps kopf's own format."""
    # One access line per liveness probe drowns everything else.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
