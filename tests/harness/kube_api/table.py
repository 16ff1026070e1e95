"""`Accept: application/json;as=Table` responses: what `kubectl get` prints.

Custom resources show Name plus their CRD's `additionalPrinterColumns` (Name and Age when
there are none); built-in kinds show Name, their columns and Age.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import jsonpath
from .meta import human_duration, parse_time
from .resources import ResourceType

NAME_COLUMN = {
    "name": "Name", "type": "string", "format": "name", "priority": 0,
    "description": "Name must be unique within a namespace.",
}
AGE_COLUMN = {
    "name": "Age", "type": "date", "format": "", "priority": 0,
    "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}
_AGE_PATH = ".metadata.creationTimestamp"


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    columns = [NAME_COLUMN]
    for c in rt.printer_columns:
        columns.append({"name": c.name, "type": c.type, "format": c.format,
                        "description": c.description, "priority": c.priority})
    if rt.age_column:
        columns.append(AGE_COLUMN)
    return columns


def _cell(column_type: str, values: list[Any]) -> Any:
    if not values:
        return None
    if column_type == "date":
        created = parse_time(values[0]) if isinstance(values[0], str) else None
        return human_duration(time.time() - created.timestamp()) if created else "<unknown>"
    if len(values) > 1:
        return ",".join(v if isinstance(v, str) else json.dumps(v) for v in values)
    value = values[0]
    if column_type == "string" and not isinstance(value, str):
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, dict | list) else str(value)
    return value


def row(rt: ResourceType, obj: dict[str, Any], include_object: str) -> dict[str, Any]:
    cells: list[Any] = [obj["metadata"]["name"]]
    for c in rt.printer_columns:
        cells.append(_cell(c.type, jsonpath.find(obj, c.json_path)))
    if rt.age_column:
        cells.append(_cell("date", jsonpath.find(obj, _AGE_PATH)))
    result: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        result["object"] = obj
    elif include_object != "None":
        result["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                            "metadata": obj["metadata"]}
    return result


def table(rt: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any],
          include_object: str) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(rt),
        "rows": [row(rt, obj, include_object) for obj in objects],
    }
