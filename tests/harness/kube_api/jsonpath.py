"""The JSONPath subset printer columns use: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `[?(@.k=="v")]`."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

Step = tuple[Any, ...]

_FILTER_RE = re.compile(r"^\?\(\s*@((?:\.[\w-]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in ("'", '"') and text[-1:] == text[:1]:
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


@lru_cache(maxsize=512)
def compile_path(path: str) -> tuple[Step, ...]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    steps: list[Step] = []
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == ".":
            match = re.match(r"\.([\w-]*)", path[i:])
            name = match.group(1) if match else ""
            if name:
                steps.append(("field", name))
            i += len(match.group(0)) if match else 1
        elif ch == "[":
            end = path.index("]", i)
            while path.count("(", i, end) > path.count(")", i, end):  # ] inside a filter's literal
                end = path.index("]", end + 1)
            inner = path[i + 1 : end].strip()
            filt = _FILTER_RE.match(inner)
            if inner == "*":
                steps.append(("all",))
            elif filt:
                sub = tuple(("field", p) for p in filt.group(1).strip(".").split("."))
                literal = _literal(filt.group(3)) if filt.group(2) else None
                steps.append(("filter", sub, filt.group(2), literal))
            elif inner[:1] in ("'", '"'):
                steps.append(("field", inner[1:-1]))
            else:
                steps.append(("index", int(inner)))
            i = end + 1
        else:
            match = re.match(r"[\w-]+", path[i:])
            if not match:
                raise ValueError(f"unsupported JSONPath {path!r}")
            steps.append(("field", match.group(0)))
            i += len(match.group(0))
    return tuple(steps)


def _compare(value: Any, op: str, literal: Any) -> bool:
    try:
        return {
            "==": value == literal, "!=": value != literal, "<": value < literal,
            ">": value > literal, "<=": value <= literal, ">=": value >= literal,
        }[op]
    except TypeError:
        return False


def find(obj: Any, path: str) -> list[Any]:
    """Every value the path selects (empty when nothing matches)."""
    current = [obj]
    for step in compile_path(path):
        following: list[Any] = []
        for value in current:
            if step[0] == "field" and isinstance(value, dict) and step[1] in value:
                following.append(value[step[1]])
            elif step[0] == "index" and isinstance(value, list) and -len(value) <= step[1] < len(value):
                following.append(value[step[1]])
            elif step[0] == "all":
                following.extend(value if isinstance(value, list) else value.values() if isinstance(value, dict) else [])
            elif step[0] == "filter" and isinstance(value, list):
                for item in value:
                    hit = find_steps(item, step[1])
                    if hit and (step[2] is None or _compare(hit[0], step[2], step[3])):
                        following.append(item)
        current = following
    return current


def find_steps(obj: Any, steps: tuple[Step, ...]) -> list[Any]:
    value = obj
    for _, name in steps:
        if not isinstance(value, dict) or name not in value:
            return []
        value = value[name]
    return [value]
