"""The YAML condition language (rules.md §4.3-4.7) plus acteon's extensions.

Reading (pass 1) recognises each mapping's *shape* in upstream's fixed order:
the first shape whose keys are present with valid types wins, keys the shape
does not use are ignored (with a warning), and a shape that fails lets later
shapes try. Compiling (pass 2) turns shapes into IR.

acteon extensions (DECISIONS D27, D17), tried only after every upstream shape
so nothing upstream accepts changes meaning:

* ``not: <condition>`` -> ``Unary(Not, ...)``;
* ``has_active_event: <event_type>`` / ``inhibit_if_active: <event_type>`` with
  optional ``label_field: <path>`` -> ``HasActiveEvent``;
* ``cel: "<CEL expression>"`` -> the expression's IR (CEL frontend, ``_cel.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acteon.rules import ir
from acteon.rules._rulefile import CompileError, Dialect, ShapeError
from acteon.rules._values import I64_MAX
from acteon.rules._yaml_loader import (
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    YamlError,
    describe_node,
    is_null,
    mapping_items,
    scalar_value,
    to_value,
)

MAX_DEPTH = 16
_DEPTH_MESSAGE = f"condition nesting depth exceeded maximum of {MAX_DEPTH}"
_READ_DEPTH_GUARD = 4 * MAX_DEPTH

OPERATORS: tuple[tuple[str, ir.BinaryOp], ...] = (
    ("eq", ir.BinaryOp.EQ),
    ("ne", ir.BinaryOp.NE),
    ("gt", ir.BinaryOp.GT),
    ("lt", ir.BinaryOp.LT),
    ("gte", ir.BinaryOp.GE),
    ("lte", ir.BinaryOp.LE),
    ("contains", ir.BinaryOp.CONTAINS),
    ("starts_with", ir.BinaryOp.STARTS_WITH),
    ("ends_with", ir.BinaryOp.ENDS_WITH),
    ("matches", ir.BinaryOp.MATCHES),
    ("in_list", ir.BinaryOp.IN),
)
_OP_NAMES = frozenset(name for name, _ in OPERATORS)
_STRING_OPS = frozenset({"contains", "starts_with", "ends_with", "matches"})

Warnings = list[tuple[str, str]]


class _NoMatch(Exception):
    """This shape does not fit; ``reason`` is None when its key is simply absent."""

    def __init__(self, reason: str | None = None, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


# --------------------------------------------------------------------------- shapes


@dataclass
class _Check:
    left: str  # a field path, or a state-counter key
    counter: bool
    ops: list[tuple[ir.BinaryOp, Any]]
    key: str


@dataclass
class _StateSeen:
    name: str
    within: int | None
    key: str


@dataclass
class _Semantic:
    topic: str
    threshold: float | None
    text_field: str | None
    key: str


@dataclass
class _Wasm:
    plugin: str
    function: str | None


@dataclass
class _Group:
    kind: str  # "all" | "any"
    items: list[Any]
    key: str


@dataclass
class _Not:
    inner: Any
    key: str


@dataclass
class _ActiveEvent:
    event_type: str
    label_field: str | None
    key: str


@dataclass
class _Cel:
    text: str
    key: str


# --------------------------------------------------------------------------- pass 1: reading


def _string(node: Node | None, key: str, what: str) -> str:
    value = scalar_value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(value, str):
        assert node is not None
        raise _NoMatch(f"`{what}` must be a string, got {describe_node(node)}", key)
    return value


def _opt_string(node: Node | None, key: str, what: str) -> str | None:
    if node is None or is_null(node):
        return None
    return _string(node, key, what)


def _value(node: Node, key: str) -> Any:
    try:
        return to_value(node)
    except YamlError as exc:
        raise _NoMatch(str(exc), key) from None


def _operators(items: dict[str, Node], key: str) -> list[tuple[ir.BinaryOp, Any]]:
    ops: list[tuple[ir.BinaryOp, Any]] = []
    for name, op in OPERATORS:
        node = items.get(name)
        if node is None or is_null(node):
            continue  # a null operator value counts as absent
        where = f"{key}.{name}"
        if name in _STRING_OPS:
            ops.append((op, _string(node, where, name)))
        elif name == "in_list":
            if not isinstance(node, SequenceNode):
                raise _NoMatch(f"`in_list` must be a sequence, got {describe_node(node)}", where)
            ops.append((op, _value(node, where)))
        else:
            ops.append((op, _value(node, where)))
    return ops


def _field_check(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "field" not in items:
        raise _NoMatch
    left = _string(items["field"], f"{key}.field", "field")
    return _Check(left, False, _operators(items, key), key), {"field"} | _OP_NAMES


def _state_counter(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "state_counter" not in items:
        raise _NoMatch
    left = _string(items["state_counter"], f"{key}.state_counter", "state_counter")
    return _Check(left, True, _operators(items, key), key), {"state_counter"} | _OP_NAMES


def _state_seen(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "state_seen" not in items:
        raise _NoMatch
    name = _string(items["state_seen"], f"{key}.state_seen", "state_seen")
    within = None
    node = items.get("within_seconds")
    if node is not None and not is_null(node):
        value = scalar_value(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**64 - 1:
            raise _NoMatch(
                f"`within_seconds` must be a non-negative integer, got {describe_node(node)}",
                f"{key}.within_seconds",
            )
        within = value
    return _StateSeen(name, within, key), {"state_seen", "within_seconds"}


def _semantic(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "semantic_match" not in items:
        raise _NoMatch
    topic = _string(items["semantic_match"], f"{key}.semantic_match", "semantic_match")
    threshold = None
    node = items.get("threshold")
    if node is not None and not is_null(node):
        value = scalar_value(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _NoMatch(f"`threshold` must be a number, got {describe_node(node)}", f"{key}.threshold")
        threshold = float(value)
    text_field = _opt_string(items.get("text_field"), f"{key}.text_field", "text_field")
    return _Semantic(topic, threshold, text_field, key), {"semantic_match", "threshold", "text_field"}


def _wasm(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "wasm_plugin" not in items:
        raise _NoMatch
    plugin = _string(items["wasm_plugin"], f"{key}.wasm_plugin", "wasm_plugin")
    function = _opt_string(items.get("wasm_function"), f"{key}.wasm_function", "wasm_function")
    return _Wasm(plugin, function), {"wasm_plugin", "wasm_function"}


def _group(kind: str) -> Callable[[dict[str, Node], str, int, Warnings], tuple[Any, set[str]]]:
    def read(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
        if kind not in items:
            raise _NoMatch
        node = items[kind]
        where = f"{key}.{kind}"
        if not isinstance(node, SequenceNode):
            raise _NoMatch(f"`{kind}` must be a sequence, got {describe_node(node)}", where)
        parsed = [
            _read(item, f"{where}[{i}]", depth + 1, warn, top=False) for i, item in enumerate(node.value)
        ]
        return _Group(kind, parsed, where), {kind}

    return read


def _not(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "not" not in items:
        raise _NoMatch
    return _Not(_read(items["not"], f"{key}.not", depth + 1, warn, top=True), f"{key}.not"), {"not"}


def _active_event(name: str) -> Callable[[dict[str, Node], str, int, Warnings], tuple[Any, set[str]]]:
    def read(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
        if name not in items:
            raise _NoMatch
        event_type = _string(items[name], f"{key}.{name}", name)
        label = _opt_string(items.get("label_field"), f"{key}.label_field", "label_field")
        return _ActiveEvent(event_type, label, key), {name, "label_field"}

    return read


def _cel(items: dict[str, Node], key: str, depth: int, warn: Warnings) -> tuple[Any, set[str]]:
    if "cel" not in items:
        raise _NoMatch
    return _Cel(_string(items["cel"], f"{key}.cel", "cel"), f"{key}.cel"), {"cel"}


_Reader = Callable[[dict[str, Node], str, int, Warnings], tuple[Any, set[str]]]
_PREDICATES: tuple[_Reader, ...] = (_field_check, _state_seen, _state_counter, _semantic, _wasm)
_EXTENSIONS: tuple[_Reader, ...] = (
    _cel,
    _not,
    _active_event("has_active_event"),
    _active_event("inhibit_if_active"),
)
_TOP_ORDER: tuple[_Reader, ...] = (_group("all"), _group("any"), *_PREDICATES, *_EXTENSIONS)
_ITEM_ORDER: tuple[_Reader, ...] = (*_PREDICATES, _group("all"), _group("any"), *_EXTENSIONS)
_FORMS = "field, state_seen, state_counter, semantic_match, wasm_plugin, all, any, not, has_active_event, cel"


def _read(node: Node, key: str, depth: int, warn: Warnings, *, top: bool) -> Any:
    if depth > _READ_DEPTH_GUARD:
        raise _NoMatch(_DEPTH_MESSAGE, key)
    if not isinstance(node, MappingNode):
        raise _NoMatch(f"a condition must be a mapping, got {describe_node(node)}", key)
    try:
        items = {k: v for k, _, v in mapping_items(node)}
    except YamlError as exc:
        raise _NoMatch(str(exc), key) from None
    first_failure: _NoMatch | None = None
    for reader in _TOP_ORDER if top else _ITEM_ORDER:
        attempt: Warnings = []  # warnings of a failed attempt are dropped with it
        try:
            shape, used = reader(items, key, depth, attempt)
        except _NoMatch as miss:
            if miss.reason is not None and first_failure is None:
                first_failure = miss
            continue
        warn.extend(attempt)
        for name in items:
            if name not in used:
                warn.append((f"{key}.{name}", f"key '{name}' is not part of this condition (ignored)"))
        return shape
    if first_failure is not None:
        raise first_failure
    keys = ", ".join(sorted(items)) or "none"
    raise _NoMatch(f"condition did not match any known form (keys: {keys}; expected one of {_FORMS})", key)


def read_condition(node: Node, key: str, warnings: Warnings) -> Any:
    """Pass 1 for a YAML ``condition`` mapping."""
    try:
        return _read(node, key, 0, warnings, top=True)
    except _NoMatch as miss:
        raise ShapeError(miss.reason or "invalid condition", miss.key or key) from None


# --------------------------------------------------------------------------- pass 2: compiling


def _path(text: str, key: str) -> ir.Expr:
    try:
        return ir.path(text)
    except ir.PathError as exc:
        raise CompileError(str(exc), key) from None


def _compile(shape: Any, depth: int) -> ir.Expr:
    if isinstance(shape, _Check):
        left = ir.StateCounter(shape.left) if shape.counter else _path(shape.left, f"{shape.key}.field")
        checks: list[ir.Expr] = [ir.Binary(op, left, ir.literal(value)) for op, value in shape.ops]
        if not checks:
            raise CompileError("field operation has no comparison operator", shape.key)
        return checks[0] if len(checks) == 1 else ir.All(checks)
    if isinstance(shape, _StateSeen):
        if shape.within is not None and shape.within > I64_MAX:
            raise CompileError(
                f"within_seconds overflow: {shape.within} does not fit in i64", f"{shape.key}.within_seconds"
            )
        limit = I64_MAX if shape.within is None else shape.within
        return ir.Binary(ir.BinaryOp.LT, ir.StateTimeSince(shape.name), ir.Int(limit))
    if isinstance(shape, _Semantic):
        text = None if shape.text_field is None else _path(shape.text_field, f"{shape.key}.text_field")
        threshold = 0.8 if shape.threshold is None else shape.threshold
        return ir.SemanticMatch(shape.topic, threshold, text)
    if isinstance(shape, _Wasm):
        return ir.WasmCall(shape.plugin, shape.function or "evaluate")
    if isinstance(shape, _Group):
        if depth > MAX_DEPTH:
            raise CompileError(_DEPTH_MESSAGE, shape.key)
        items = [_compile(item, depth + 1) for item in shape.items]
        return ir.All(items) if shape.kind == "all" else ir.Any(items)
    if isinstance(shape, _Not):
        if depth > MAX_DEPTH:
            raise CompileError(_DEPTH_MESSAGE, shape.key)
        return ir.Unary(ir.UnaryOp.NOT, _compile(shape.inner, depth + 1))
    if isinstance(shape, _ActiveEvent):
        label = None if shape.label_field is None else _path(shape.label_field, f"{shape.key}.label_field")
        return ir.HasActiveEvent(shape.event_type, label)
    if isinstance(shape, _Cel):
        from acteon.rules._cel import compile_cel_condition  # import cycle: _cel registers a frontend

        return compile_cel_condition(shape.text, shape.key)
    raise CompileError(f"unsupported condition shape {type(shape).__name__}")


def compile_condition(shape: Any, key: str) -> ir.Expr:
    """Pass 2 for a shape produced by :func:`read_condition`."""
    return _compile(shape, 0)


def compile_yaml_condition(node: Node, warnings: Warnings | None = None) -> ir.Expr:
    """Read and compile one condition mapping (used by tools and tests)."""
    shape = read_condition(node, "condition", warnings if warnings is not None else [])
    return compile_condition(shape, "condition")


YAML_DIALECT = Dialect(label="YAML", read_condition=read_condition, compile_condition=compile_condition)
