"""API errors rendered as `Status` objects, worded like the real API server's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


@dataclass(frozen=True)
class FieldError:
    """One cause of an `Invalid` error, formatted like apimachinery's field.Error."""

    field: str
    type: str  # FieldValueInvalid, FieldValueRequired, ... (the `reason` of a cause)
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def message(self) -> str:
        head = {
            "FieldValueInvalid": "Invalid value",
            "FieldValueRequired": "Required value",
            "FieldValueNotSupported": "Unsupported value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueTooLong": "Too long",
            "FieldValueTooMany": "Too many",
            "FieldValueDuplicate": "Duplicate value",
        }.get(self.type, "Invalid value")
        parts = [head]
        if self.has_value:
            parts.append(format_value(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def text(self) -> str:
        return f"{self.field}: {self.message()}" if self.field else self.message()

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message(), "field": self.field}


def format_value(value: Any) -> str:
    """Values as Go's `%#v` would show them for JSON data: strings quoted, numbers bare."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return str(value)


def invalid(field_path: str, value: Any, detail: str) -> FieldError:
    return FieldError(field_path, "FieldValueInvalid", detail, value, True)


def required(field_path: str, detail: str = "") -> FieldError:
    return FieldError(field_path, "FieldValueRequired", detail)


def forbidden(field_path: str, detail: str) -> FieldError:
    return FieldError(field_path, "FieldValueForbidden", detail)


@dataclass
class ApiError(Exception):
    """Raised anywhere in the server; the app turns it into a JSON `Status` response."""

    code: int
    message: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reason = self.reason or REASONS.get(self.code, "Unknown")
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(group: str, kind: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    gr = f"{plural}.{group}" if group else plural
    return ApiError(404, f'{gr} "{name}" not found', details=_details(group, plural, name))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    gr = f"{plural}.{group}" if group else plural
    return ApiError(409, f'{gr} "{name}" already exists', "AlreadyExists", _details(group, plural, name))


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    gr = f"{plural}.{group}" if group else plural
    return ApiError(409, f'Operation cannot be fulfilled on {gr} "{name}": {why}', details=_details(group, plural, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid_object(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    gk = f"{kind}.{group}" if group else kind
    texts = [e.text() for e in errors]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(group, kind, name)
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, f'{gk} "{name}" is invalid: {summary}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def page_not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})
