"""ObjectMeta rules: name formats, label syntax, generated names, timestamps, durations."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

from .errors import FieldError, invalid, required

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    r"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# Alphabet of generated name suffixes (no vowels, so no words), as in apiserver's names package.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def generate_name(prefix: str) -> str:
    # Like the API server, trim the prefix so the result still fits 63 characters.
    return prefix[:58] + "".join(random.choices(_SUFFIX_ALPHABET, k=5))


def validate_name(name: str, rule: str, path: str = "metadata.name") -> list[FieldError]:
    if rule == "label":
        if len(name) > 63:
            return [invalid(path, name, "must be no more than 63 characters")]
        return [] if _LABEL_RE.match(name) else [invalid(path, name, LABEL_MSG)]
    if rule == "path":
        if name in (".", ".."):
            return [invalid(path, name, f"may not be '{name}'")]
        bad = next((c for c in ("/", "%") if c in name), None)
        return [invalid(path, name, f"may not contain '{bad}'")] if bad else []
    errors = []
    if len(name) > 253:
        errors.append(invalid(path, name, "must be no more than 253 characters"))
    if not _SUBDOMAIN_RE.match(name):
        errors.append(invalid(path, name, SUBDOMAIN_MSG))
    return errors


def _qualified_name_errors(key: str, path: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN_RE.match(prefix)):
        errors.append(invalid(path, key, "prefix part " + SUBDOMAIN_MSG))
    if not name or len(name) > 63 or not _QUALIFIED_NAME_RE.match(name):
        errors.append(invalid(path, key, (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )))
    return errors


def validate_metadata(meta: dict[str, Any], name_rule: str) -> list[FieldError]:
    """Name, label and annotation syntax; the same checks on create and on update."""
    errors: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    elif isinstance(name, str):
        errors.extend(validate_name(name, name_rule))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [*errors, invalid("metadata.labels", labels, "must be a map of strings")]
    for key, value in labels.items():
        path = "metadata.labels"
        errors.extend(_qualified_name_errors(key, path))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            errors.append(invalid(path, value, (
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                "'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            )))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*errors, invalid("metadata.annotations", annotations, "must be a map of strings")]
    total = 0
    for key, value in annotations.items():
        errors.extend(_qualified_name_errors(key, "metadata.annotations"))
        if not isinstance(value, str):
            errors.append(invalid(f"metadata.annotations.{key}", value, "must be a string"))
        total += len(key) + len(str(value))
    if total > 256 * 1024:
        errors.append(FieldError("metadata.annotations", "FieldValueTooLong", "may not be more than 262144 bytes"))
    return errors


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`, as `kubectl get` shows ages."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return f"{hours // 24 // 365}y{(hours // 24) % 365}d"
    return f"{hours // 24 // 365}y"
