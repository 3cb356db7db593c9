"""The expression IR every rule condition is expressed in (rules.md §6).

Frontends (YAML here, CEL in ``_cel.py``) build trees of these nodes; nothing
else about a frontend reaches the engine. Each node renders itself with
:meth:`Expr.to_source` (the exact upstream display used in traces) and
compiles itself, once, into a Python closure with :meth:`Expr.compile`;
evaluation never walks the tree.

Build nodes directly::

    from acteon.rules import ir
    cond = ir.Binary(ir.BinaryOp.GT, ir.path("action.payload.amount"), ir.Int(1000))
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any as _Any

from acteon.rules._values import format_float

if TYPE_CHECKING:
    from acteon.rules._context import EvalContext

Evaluator = Callable[["EvalContext"], _Any]
"""A compiled expression: takes the evaluation context, returns a runtime value."""


class UnaryOp(enum.Enum):
    NOT = "!"
    NEG = "-"


class BinaryOp(enum.Enum):
    """Binary operators; the value is the symbol used by :meth:`Expr.to_source`."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "&&"
    OR = "||"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    MATCHES = "matches"
    IN = "in"


def _quote(text: str) -> str:
    # Upstream escapes double quotes only; backslashes are left as they are.
    return '"' + text.replace('"', '\\"') + '"'


class Expr:
    """Base class of every IR node."""

    __slots__ = ()

    def to_source(self) -> str:
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        return ()

    def compile(self) -> Evaluator:
        """Compile to a closure ``fn(ctx) -> value`` (done once, at load)."""
        from acteon.rules import _compile

        return _compile.compile_expr(self)

    def walk(self) -> Iterator[Expr]:
        """This node and every descendant, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def __str__(self) -> str:
        return self.to_source()


# --------------------------------------------------------------------------- literals


class Literal(Expr):
    """Marker base of the constant nodes; :meth:`value` is the runtime value."""

    __slots__ = ()

    def value(self) -> _Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Null(Literal):
    def value(self) -> None:
        return None

    def to_source(self) -> str:
        return "null"


@dataclass(frozen=True, slots=True)
class Bool(Literal):
    val: bool

    def value(self) -> bool:
        return self.val

    def to_source(self) -> str:
        return "true" if self.val else "false"


@dataclass(frozen=True, slots=True)
class Int(Literal):
    val: int

    def value(self) -> int:
        return self.val

    def to_source(self) -> str:
        return str(self.val)


@dataclass(frozen=True, slots=True)
class Float(Literal):
    val: float

    def value(self) -> float:
        return self.val

    def to_source(self) -> str:
        return format_float(self.val)


@dataclass(frozen=True, slots=True)
class String(Literal):
    val: str

    def value(self) -> str:
        return self.val

    def to_source(self) -> str:
        return _quote(self.val)


@dataclass(frozen=True, slots=True)
class List(Expr):
    items: tuple[Expr, ...]

    def __init__(self, items: Sequence[Expr]) -> None:
        object.__setattr__(self, "items", tuple(items))

    def children(self) -> tuple[Expr, ...]:
        return self.items

    def to_source(self) -> str:
        return "[" + ", ".join(i.to_source() for i in self.items) + "]"


@dataclass(frozen=True, slots=True)
class Map(Expr):
    """Ordered ``(key, expr)`` pairs (YAML literals arrive with keys sorted)."""

    entries: tuple[tuple[str, Expr], ...]

    def __init__(self, entries: Sequence[tuple[str, Expr]]) -> None:
        object.__setattr__(self, "entries", tuple((k, v) for k, v in entries))

    def children(self) -> tuple[Expr, ...]:
        return tuple(v for _, v in self.entries)

    def to_source(self) -> str:
        return "{" + ", ".join(f"{_quote(k)}: {v.to_source()}" for k, v in self.entries) + "}"


# --------------------------------------------------------------------------- access


@dataclass(frozen=True, slots=True)
class Ident(Expr):
    name: str

    def to_source(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Field(Expr):
    base: Expr
    name: str

    def children(self) -> tuple[Expr, ...]:
        return (self.base,)

    def to_source(self) -> str:
        return f"{self.base.to_source()}.{self.name}"


@dataclass(frozen=True, slots=True)
class Index(Expr):
    base: Expr
    index: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.base, self.index)

    def to_source(self) -> str:
        return f"{self.base.to_source()}[{self.index.to_source()}]"


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: UnaryOp
    operand: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def to_source(self) -> str:
        return f"{self.op.value}{self.operand.to_source()}"


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: BinaryOp
    left: Expr
    right: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def to_source(self) -> str:
        return f"({self.left.to_source()} {self.op.value} {self.right.to_source()})"


@dataclass(frozen=True, slots=True)
class Ternary(Expr):
    cond: Expr
    then: Expr
    otherwise: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.cond, self.then, self.otherwise)

    def to_source(self) -> str:
        return f"({self.cond.to_source()} ? {self.then.to_source()} : {self.otherwise.to_source()})"


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]

    def __init__(self, name: str, args: Sequence[Expr] = ()) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", tuple(args))

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def to_source(self) -> str:
        return f"{self.name}(" + ", ".join(a.to_source() for a in self.args) + ")"


@dataclass(frozen=True, slots=True)
class All(Expr):
    items: tuple[Expr, ...]

    def __init__(self, items: Sequence[Expr]) -> None:
        object.__setattr__(self, "items", tuple(items))

    def children(self) -> tuple[Expr, ...]:
        return self.items

    def to_source(self) -> str:
        return "all(" + " && ".join(i.to_source() for i in self.items) + ")"


@dataclass(frozen=True, slots=True)
class Any(Expr):
    items: tuple[Expr, ...]

    def __init__(self, items: Sequence[Expr]) -> None:
        object.__setattr__(self, "items", tuple(items))

    def children(self) -> tuple[Expr, ...]:
        return self.items

    def to_source(self) -> str:
        return "any(" + " || ".join(i.to_source() for i in self.items) + ")"


# --------------------------------------------------------------------------- state and events


@dataclass(frozen=True, slots=True)
class StateGet(Expr):
    key: str

    def to_source(self) -> str:
        return f'StateGet("{self.key}")'


@dataclass(frozen=True, slots=True)
class StateCounter(Expr):
    key: str

    def to_source(self) -> str:
        return f'StateCounter("{self.key}")'


@dataclass(frozen=True, slots=True)
class StateTimeSince(Expr):
    key: str

    def to_source(self) -> str:
        return f'StateTimeSince("{self.key}")'


@dataclass(frozen=True, slots=True)
class HasActiveEvent(Expr):
    event_type: str
    label_value: Expr | None = None

    def children(self) -> tuple[Expr, ...]:
        return () if self.label_value is None else (self.label_value,)

    def to_source(self) -> str:
        if self.label_value is None:
            return f'HasActiveEvent("{self.event_type}")'
        return f'HasActiveEvent("{self.event_type}", {self.label_value.to_source()})'


@dataclass(frozen=True, slots=True)
class GetEventState(Expr):
    fingerprint: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.fingerprint,)

    def to_source(self) -> str:
        return f"GetEventState({self.fingerprint.to_source()})"


@dataclass(frozen=True, slots=True)
class EventInState(Expr):
    fingerprint: Expr
    state: str

    def children(self) -> tuple[Expr, ...]:
        return (self.fingerprint,)

    def to_source(self) -> str:
        return f'EventInState({self.fingerprint.to_source()}, "{self.state}")'


@dataclass(frozen=True, slots=True)
class SemanticMatch(Expr):
    topic: str
    threshold: float = 0.8
    text_field: Expr | None = None

    def children(self) -> tuple[Expr, ...]:
        return () if self.text_field is None else (self.text_field,)

    def to_source(self) -> str:
        text = f'SemanticMatch("{self.topic}", threshold={format_float(float(self.threshold))}'
        if self.text_field is not None:
            text += f", text={self.text_field.to_source()}"
        return text + ")"


@dataclass(frozen=True, slots=True)
class WasmCall(Expr):
    plugin: str
    function: str = "evaluate"

    def to_source(self) -> str:
        return f'wasm("{self.plugin}", "{self.function}")'


# --------------------------------------------------------------------------- helpers


class PathError(ValueError):
    """A field path that cannot be turned into an expression."""


def path(text: str) -> Expr:
    """``"a.b.c"`` -> ``Field(Field(Ident(a), b), c)`` (rules.md §4.5)."""
    parts = text.split(".")
    if not text or not parts[0]:
        raise PathError(f"empty field path: '{text}'")
    expr: Expr = Ident(parts[0])
    for part in parts[1:]:
        if not part:
            raise PathError(f"empty segment in field path: '{text}'")
        expr = Field(expr, part)
    return expr


def literal(value: _Any) -> Expr:
    """A runtime value (JSON-like Python value) as a constant expression."""
    if value is None:
        return Null()
    if isinstance(value, bool):
        return Bool(value)
    if isinstance(value, int):
        return Int(value) if -(2**63) <= value <= 2**63 - 1 else Float(float(value))
    if isinstance(value, float):
        return Float(value)
    if isinstance(value, str):
        return String(value)
    if isinstance(value, list | tuple):
        return List([literal(v) for v in value])
    if isinstance(value, dict):
        return Map([(str(k), literal(v)) for k, v in value.items()])
    raise TypeError(f"cannot use {type(value).__name__} as a rule literal")


def semantic_topics(expr: Expr) -> list[str]:
    """Every semantic-match topic in ``expr`` (to pre-warm embedding caches)."""
    return [node.topic for node in expr.walk() if isinstance(node, SemanticMatch)]


__all__ = [
    "All",
    "Any",
    "Binary",
    "BinaryOp",
    "Bool",
    "Call",
    "Evaluator",
    "EventInState",
    "Expr",
    "Field",
    "Float",
    "GetEventState",
    "HasActiveEvent",
    "Ident",
    "Index",
    "Int",
    "List",
    "Literal",
    "Map",
    "Null",
    "PathError",
    "SemanticMatch",
    "StateCounter",
    "StateGet",
    "StateTimeSince",
    "String",
    "Ternary",
    "Unary",
    "UnaryOp",
    "WasmCall",
    "literal",
    "path",
    "semantic_topics",
]
