"""CRD `x-kubernetes-validations` rules, evaluated by a maintained CEL implementation.

CEL itself (parsing, macros, operators, standard functions, error semantics) comes from the
`common-expression-language` package (Python bindings of the Rust cel-interpreter). Here are only
the Kubernetes extension libraries that CRD rules use and that package lacks: the strings
extension (`lowerAscii`, `upperAscii`, `trim`, `split`, `join`, `indexOf`, `lastIndexOf`,
`replace`, `substring`), the lists extension (`isSorted`, `sum`, `min`, `max`, `indexOf`), and
quantities (`quantity`, `isQuantity`, `compareTo`, `isGreaterThan`, `isLessThan`, `asInteger`,
`asApproximateFloat`, `sign`).

A rule this cannot evaluate (a syntax error, an unknown function) raises `CelUnsupported`, and
the schema refuses the CRD or the request: a rule is never silently skipped.
"""

from __future__ import annotations

import math
import re
from typing import Any

import cel as celpy


class CelUnsupported(Exception):
    """The rule does not compile, or uses a function no library here implements."""


class CelError(Exception):
    """Evaluation failed at runtime (e.g. `no such key: x`), as a CEL program would."""


Program = Any

# Kubernetes quantities: a number with a binary or decimal suffix (resource.Quantity's syntax).
_QUANTITY = re.compile(r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY_TAG = "__k8s_quantity__"


def _quantity_value(text: str) -> float:
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    number, suffix = float(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * 10 ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _q(value: Any) -> float:
    if isinstance(value, dict) and _QUANTITY_TAG in value:
        return float(value[_QUANTITY_TAG])
    raise ValueError("no such overload: expected a quantity")


def _quantity(text: str) -> dict[str, float]:
    return {_QUANTITY_TAG: _quantity_value(text)}


def _is_quantity(text: str) -> bool:
    try:
        _quantity_value(text)
    except ValueError:
        return False
    return True


def _compare(a: Any, b: Any) -> int:
    x, y = _q(a), _q(b)
    return (x > y) - (x < y)


def _index_of(target: Any, item: Any, *start: int) -> int:
    if isinstance(target, str):
        return target.find(item, *start)
    return next((i for i, v in enumerate(target) if v == item), -1)


def _last_index_of(target: Any, item: Any) -> int:
    if isinstance(target, str):
        return target.rfind(item)
    return max((i for i, v in enumerate(target) if v == item), default=-1)


def _substring(text: str, start: int, end: int | None = None) -> str:
    stop = len(text) if end is None else end
    if not 0 <= start <= stop <= len(text):
        raise ValueError(f"index out of range: {start}, {stop}")
    return text[start:stop]


def _split(text: str, sep: str, limit: int | None = None) -> list[str]:
    if limit is None or limit < 0:
        return text.split(sep)
    if limit == 0:
        return []
    return text.split(sep, limit - 1)


def _replace(text: str, old: str, new: str, limit: int | None = None) -> str:
    return text.replace(old, new) if limit is None or limit < 0 else text.replace(old, new, limit)


def _join(items: list[str], sep: str = "") -> str:
    return sep.join(items)


def _sum(items: list[Any]) -> Any:
    return sum(items) if items else 0


def _min(items: Any, *more: Any) -> Any:
    values = list(items) if isinstance(items, list) and not more else [items, *more]
    if not values:
        raise ValueError("min called on an empty list")
    return min(values)


def _max(items: Any, *more: Any) -> Any:
    values = list(items) if isinstance(items, list) and not more else [items, *more]
    if not values:
        raise ValueError("max called on an empty list")
    return max(values)


FUNCTIONS: dict[str, Any] = {
    # Kubernetes strings extension.
    "lowerAscii": lambda s: "".join(c.lower() if c.isascii() else c for c in s),
    "upperAscii": lambda s: "".join(c.upper() if c.isascii() else c for c in s),
    "trim": lambda s: s.strip(),
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "replace": _replace,
    "substring": _substring,
    # Kubernetes lists extension.
    "isSorted": lambda items: all(a <= b for a, b in zip(items, items[1:], strict=False)),
    "sum": _sum,
    "min": _min,
    "max": _max,
    # Kubernetes quantity library.
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "compareTo": _compare,
    "isGreaterThan": lambda a, b: _compare(a, b) > 0,
    "isLessThan": lambda a, b: _compare(a, b) < 0,
    "asInteger": lambda a: int(_q(a)) if math.isfinite(_q(a)) and _q(a) == int(_q(a)) else _fail("not an integer"),
    "asApproximateFloat": lambda a: _q(a),
    "sign": lambda a: (_q(a) > 0) - (_q(a) < 0),
}


def _fail(message: str) -> Any:
    raise ValueError(message)


def compile_rule(source: str) -> Program:
    """The compiled rule; CelUnsupported when it does not parse."""
    try:
        program = celpy.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise CelUnsupported(f"cannot compile CEL rule {source!r}: {str(exc).splitlines()[0]}") from None
    named = [f for f in program.functions() if _IDENT.match(f)]  # operators are spelled `_+_`, `!_`, `@in`...
    unknown = [f for f in named if f not in FUNCTIONS and f not in _STANDARD]
    if unknown:
        raise CelUnsupported(f"CEL rule {source!r} uses {', '.join(sorted(unknown))}, which no library here implements")
    return program


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Functions and macros of CEL's standard definitions that the library evaluates itself.
_STANDARD = frozenset({
    "has", "all", "exists", "exists_one", "map", "filter", "size", "int", "uint", "double", "string", "bytes",
    "bool", "dyn", "type", "matches", "startsWith", "endsWith", "contains", "timestamp", "duration",
    "getFullYear", "getMonth", "getDayOfMonth", "getDayOfYear", "getDayOfWeek", "getHours", "getMinutes",
    "getSeconds", "getMilliseconds", "max", "min",
})


def references(program: Program, name: str) -> bool:
    """Whether the rule reads variable `name` (`oldSelf` makes it a transition rule)."""
    return name in program.variables()


def evaluate(program: Program, env: dict[str, Any]) -> Any:
    """Run the rule; CelError for a runtime error (no such key, no matching overload...)."""
    context = celpy.Context(variables={k: v for k, v in env.items() if v is not None or k == "self"})
    for name, fn in FUNCTIONS.items():
        context.add_function(name, fn)
    try:
        return program.execute(context)
    except KeyError as exc:
        raise CelError(f"no such key: {exc.args[0] if exc.args else exc}") from None
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Undefined variable or function" in message:
            raise CelUnsupported(message) from None
        raise CelError(message) from None
