"""A small CEL evaluator for CRD `x-kubernetes-validations` rules.

Supported: literals (int, double, string, bool, null, lists, maps), `self`/`oldSelf` and
macro variables, field selection and indexing, `has()`, the operators
`! - * / % + - < <= > >= == != in && || ?:`, the macros `all exists exists_one map filter`,
and the functions `size int uint double string dyn matches startsWith endsWith contains
lowerAscii upperAscii trim split join indexOf isSorted sum min max`.

Not supported (such a rule raises `CelUnsupported`, and the schema skips it): optional
types (`?.`, `orValue`), timestamps and durations, quantities, `type()`, and the format,
URL, IP and regex-extraction libraries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Node = tuple[Any, ...]


class CelUnsupported(Exception):
    """The rule uses CEL this evaluator does not implement (or does not parse)."""


class CelError(Exception):
    """Evaluation failed at runtime (e.g. `no such key: x`), as a CEL program would."""


_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<int>0x[0-9a-fA-F]+u?|\d+u?)
  | (?P<string>[rR]?(?:'''(?:.|\n)*?'''|\"\"\"(?:.|\n)*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _unquote(text: str) -> str:
    raw = text[0] in "rR"
    if raw:
        text = text[1:]
    body = text[3:-3] if text[:3] in ("'''", '"""') else text[1:-1]
    if raw:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def tokenize(source: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(source, pos)
        if not match or match.end() == pos:
            raise CelUnsupported(f"cannot parse CEL at {source[pos:]!r}")
        pos = match.end()
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "float":
            tokens.append(("lit", float(text)))
        elif kind == "int":
            text = text.rstrip("u")
            tokens.append(("lit", int(text, 16) if text.startswith("0x") else int(text)))
        elif kind == "string":
            tokens.append(("lit", _unquote(text)))
        elif kind == "ident":
            if text in ("true", "false"):
                tokens.append(("lit", text == "true"))
            elif text == "null":
                tokens.append(("lit", None))
            elif text == "in":
                tokens.append(("op", "in"))
            else:
                tokens.append(("ident", text))
        else:
            tokens.append(("op", text))
    tokens.append(("end", None))
    return tokens


_MACROS = {"all", "exists", "exists_one", "map", "filter"}


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.pos = 0

    def peek(self, value: Any = None) -> bool:
        kind, text = self.tokens[self.pos]
        return kind == "op" and text == value

    def take(self, value: str) -> None:
        if not self.peek(value):
            raise CelUnsupported(f"expected {value!r}, found {self.tokens[self.pos][1]!r}")
        self.pos += 1

    def parse(self) -> Node:
        node = self.expr()
        if self.tokens[self.pos][0] != "end":
            raise CelUnsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek("?"):
            self.pos += 1
            then = self.expr()
            self.take(":")
            return ("cond", cond, then, self.expr())
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("<", "<=", ">", ">=", "==", "!=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while any(self.peek(op) for op in self._LEVELS[level]):
            op = self.tokens[self.pos][1]
            self.pos += 1
            node = ("op", op, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek("!"):
            self.pos += 1
            return ("not", self.unary())
        if self.peek("-"):
            self.pos += 1
            return ("neg", self.unary())
        return self.member()

    def args(self) -> list[Node]:
        self.take("(")
        args: list[Node] = []
        while not self.peek(")"):
            args.append(self.expr())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return args

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.pos += 1
                kind, name = self.tokens[self.pos]
                if kind != "ident":
                    raise CelUnsupported(f"expected a field name, found {name!r}")
                self.pos += 1
                if self.peek("("):
                    args = self.args()
                    if name in _MACROS:
                        node = self._macro(name, node, args)
                    else:
                        node = ("call", name, node, args)
                else:
                    node = ("sel", node, name)
            elif self.peek("["):
                self.pos += 1
                index = self.expr()
                self.take("]")
                node = ("idx", node, index)
            else:
                return node

    @staticmethod
    def _macro(name: str, target: Node, args: list[Node]) -> Node:
        if not args or args[0][0] != "id":
            raise CelUnsupported(f"{name}() needs a variable name first")
        var = args[0][1]
        if name == "map" and len(args) == 3:
            return ("comp", "map", target, var, args[1], args[2])
        if len(args) != 2:
            raise CelUnsupported(f"wrong number of arguments to {name}()")
        return ("comp", name, target, var, args[1], None)

    def primary(self) -> Node:
        kind, value = self.tokens[self.pos]
        if kind == "lit":
            self.pos += 1
            return ("lit", value)
        if kind == "ident":
            self.pos += 1
            if self.peek("("):
                args = self.args()
                if value == "has":
                    if len(args) != 1 or args[0][0] != "sel":
                        raise CelUnsupported("has() needs a field selection")
                    return ("has", args[0][1], args[0][2])
                return ("call", value, None, args)
            return ("id", value)
        if self.peek("("):
            self.pos += 1
            node = self.expr()
            self.take(")")
            return node
        if self.peek("["):
            self.pos += 1
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek("]"):
                    self.take(",")
            self.take("]")
            return ("list", items)
        if self.peek("{"):
            self.pos += 1
            entries: list[tuple[Node, Node]] = []
            while not self.peek("}"):
                key = self.expr()
                self.take(":")
                entries.append((key, self.expr()))
                if not self.peek("}"):
                    self.take(",")
            self.take("}")
            return ("map", entries)
        raise CelUnsupported(f"unexpected {value!r}")


def compile_rule(source: str) -> Node:
    return _Parser(source).parse()


def references(node: Any, name: str) -> bool:
    """Whether the expression mentions variable `name` (e.g. oldSelf: a transition rule)."""
    if isinstance(node, tuple):
        if len(node) == 2 and node[0] == "id":
            return node[1] == name
        return any(references(part, name) for part in node)
    if isinstance(node, list):
        return any(references(part, name) for part in node)
    return False


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        if isinstance(a, str) and isinstance(b, str) or isinstance(a, list) and isinstance(b, list):
            return a + b
        if _num(a) and _num(b):
            return a + b
    elif _num(a) and _num(b):
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op in ("/", "%") and b == 0:
            raise CelError("division by zero" if op == "/" else "modulus by zero")
        if op == "/":
            return a / b if isinstance(a, float) or isinstance(b, float) else int(a / b)
        if op == "%" and isinstance(a, int) and isinstance(b, int):
            return a - b * int(a / b)
    raise CelError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "in":
        if isinstance(b, list | dict):
            return a in b
        raise CelError("no such overload: in")
    comparable = (_num(a) and _num(b)) or (type(a) is type(b) and isinstance(a, str | bool | list))
    if not comparable:
        raise CelError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict | bytes):
        return len(value)
    raise CelError("no such overload: size")


def _to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CelError(f"cannot convert {value!r} to int") from exc


def _to_double(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise CelError(f"cannot convert {value!r} to double") from exc


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_GLOBALS: dict[str, Callable[..., Any]] = {
    "size": _size,
    "int": _to_int,
    "uint": _to_int,
    "double": _to_double,
    "string": _to_string,
    "dyn": lambda v: v,
    "matches": lambda s, p: re.search(p, s) is not None,
}
_METHODS: dict[str, Callable[..., Any]] = {
    "size": _size,
    "matches": lambda s, p: re.search(p, s) is not None,
    "startsWith": lambda s, p: s.startswith(p),
    "endsWith": lambda s, p: s.endswith(p),
    "contains": lambda s, p: p in s,
    "lowerAscii": lambda s: s.lower(),
    "upperAscii": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "split": lambda s, sep: s.split(sep),
    "join": lambda items, sep="": sep.join(items),
    "indexOf": lambda s, sub: s.find(sub),
    "isSorted": lambda items: all(a <= b for a, b in zip(items, items[1:], strict=False)),
    "sum": lambda items: sum(items),
    "min": lambda items: min(items) if items else _fail("min called on empty list"),
    "max": lambda items: max(items) if items else _fail("max called on empty list"),
}


def _fail(message: str) -> Any:
    raise CelError(message)


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "id":
        if node[1] not in env:
            raise CelUnsupported(f"undeclared reference to '{node[1]}'")
        return env[node[1]]
    if kind == "sel":
        target = evaluate(node[1], env)
        if isinstance(target, dict):
            if node[2] not in target:
                raise CelError(f"no such key: {node[2]}")
            return target[node[2]]
        raise CelError(f"type '{type(target).__name__}' does not support field selection")
    if kind == "has":
        target = evaluate(node[1], env)
        if isinstance(target, dict):
            return node[2] in target
        raise CelError("invalid type for field selection")
    if kind == "idx":
        target, index = evaluate(node[1], env), evaluate(node[2], env)
        try:
            if isinstance(target, list) and (not isinstance(index, int) or index < 0):
                raise IndexError
            return target[index]
        except (IndexError, KeyError, TypeError) as exc:
            raise CelError(f"index out of range or no such key: {index!r}") from exc
    if kind == "op":
        op = node[1]
        if op in ("&&", "||"):
            return _logic(op, node[2], node[3], env)
        a, b = evaluate(node[2], env), evaluate(node[3], env)
        if op in ("+", "-", "*", "/", "%"):
            return _arith(op, a, b)
        return _compare(op, a, b)
    if kind == "not":
        value = evaluate(node[1], env)
        if not isinstance(value, bool):
            raise CelError("no such overload: !")
        return not value
    if kind == "neg":
        value = evaluate(node[1], env)
        if not _num(value):
            raise CelError("no such overload: -")
        return -value
    if kind == "cond":
        cond = evaluate(node[1], env)
        if not isinstance(cond, bool):
            raise CelError("no such overload: ?:")
        return evaluate(node[2] if cond else node[3], env)
    if kind == "list":
        return [evaluate(item, env) for item in node[1]]
    if kind == "map":
        return {evaluate(k, env): evaluate(v, env) for k, v in node[1]}
    if kind == "comp":
        return _comprehension(node, env)
    if kind == "call":
        return _call(node, env)
    raise CelUnsupported(f"unknown node {kind}")


def _logic(op: str, left: Node, right: Node, env: dict[str, Any]) -> bool:
    # CEL's && and || are commutative over errors: `error || true` is true.
    short = op == "||"
    try:
        a = evaluate(left, env)
    except CelError as exc:
        b = evaluate(right, env)
        if b is short:
            return short
        raise exc
    if a is short:
        return short
    b = evaluate(right, env)
    if not isinstance(a, bool) or not isinstance(b, bool):
        raise CelError(f"no such overload: {op}")
    return b


def _comprehension(node: Node, env: dict[str, Any]) -> Any:
    _, name, target_node, var, first, second = node
    target = evaluate(target_node, env)
    items = list(target.keys()) if isinstance(target, dict) else target
    if not isinstance(items, list):
        raise CelError(f"{name}() needs a list or map")
    results = []
    for item in items:
        scope = {**env, var: item}
        if name == "map":
            if second is None:
                results.append(evaluate(first, scope))
            elif evaluate(first, scope) is True:
                results.append(evaluate(second, scope))
        else:
            results.append((item, evaluate(first, scope)))
    if name == "map":
        return results
    if name == "filter":
        return [item for item, keep in results if keep is True]
    matches = sum(1 for _, ok in results if ok is True)
    if name == "all":
        return matches == len(results)
    if name == "exists":
        return matches > 0
    return matches == 1


def _call(node: Node, env: dict[str, Any]) -> Any:
    _, name, target_node, arg_nodes = node
    args = [evaluate(a, env) for a in arg_nodes]
    if target_node is None:
        fn = _GLOBALS.get(name)
        if fn is None:
            raise CelUnsupported(f"unsupported function {name}()")
        return _invoke(fn, name, args)
    fn = _METHODS.get(name)
    if fn is None:
        raise CelUnsupported(f"unsupported method .{name}()")
    return _invoke(fn, name, [evaluate(target_node, env), *args])


def _invoke(fn: Callable[..., Any], name: str, args: list[Any]) -> Any:
    try:
        return fn(*args)
    except CelError:
        raise
    except (TypeError, AttributeError, ValueError, re.error) as exc:
        raise CelError(f"no such overload: {name}: {exc}") from exc
