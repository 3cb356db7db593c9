"""Single-frame closures for ``<field> <op> <literal>`` predicates.

A predicate compiled as "comparison closure calling field closure" costs two
Python frames. For the shapes YAML rules are made of, the field read is
inlined into the comparison instead. The closure bodies are generated from the
small templates below -- once per (reader, test) pair, at first use -- so every
combination keeps one readable definition and exactly the semantics of
``_ops``/``_values`` (anything unusual falls to ``fail``, the generic path).

Readers (how ``v`` is obtained):

* ``call``    -- ``v = left(ctx)`` (any expression);
* ``payload`` -- ``action.payload.<key>`` with a dict ``.get`` (missing leaf is
  Null); a non-dict payload calls ``left`` for the exact error;
* ``label``   -- ``action.metadata.<key>`` / ``action.trace_context.<key>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acteon.rules import ir
from acteon.rules._values import FLOAT_EPSILON, I64_MAX, I64_MIN, normalize

Factory = Callable[..., Any]

_READERS = {
    "call": """\
        v = left(ctx)
""",
    "payload": """\
        p = ctx.action.payload
        if type(p) is dict:
            v = p.get(key)
            t = type(v)
            if t is list or t is dict or (t is int and not _lo <= v <= _hi):
                v = normalize(v)
        else:
            v = left(ctx)
""",
    "label": """\
        v = get_map(ctx).get(key)
""",
}

# {sym} is the Python comparison operator; {nan} adds "NaN compares as equal" for <= / >=.
_TESTS = {
    "order_int": """\
        t = type(v)
        if t is int:
            return v {sym} lit
        if t is float:
            return v {sym} flit{nan}
        return fail(op, v, lit, node)
""",
    "order_float": """\
        t = type(v)
        if t is float:
            return v {sym} lit{nan}
        if t is int:
            return float(v) {sym} lit
        return fail(op, v, lit, node)
""",
    "order_str": """\
        if type(v) is str:
            return v {sym} lit
        return fail(op, v, lit, node)
""",
    "contains_str": """\
        if type(v) is str:
            return lit in v
        return fail(op, v, lit, node)
""",
    "starts_with_str": """\
        if type(v) is str:
            return v.startswith(lit)
        return fail(op, v, lit, node)
""",
    "ends_with_str": """\
        if type(v) is str:
            return v.endswith(lit)
        return fail(op, v, lit, node)
""",
    "in_strings": """\
        return type(v) is str and v in members
""",
    "eq_int": """\
        t = type(v)
        if t is int:
            return v == lit
        if t is float:
            return abs(v - flit) < eps
        return False
""",
    "eq_float": """\
        t = type(v)
        if t is float or t is int:
            return abs(v - lit) < eps
        return False
""",
    "eq_identity": """\
        return v is lit
""",
}

_HEADER = """\
def factory(lit, flit, members, key, left, get_map, fail, op, node):
    def fn(ctx):
"""
_FOOTER = """\
    return fn
"""

_FACTORIES: dict[tuple[str, str, str], Factory] = {}
_GLOBALS: dict[str, Any] = {
    "normalize": normalize,
    "_lo": I64_MIN,
    "_hi": I64_MAX,
    "eps": FLOAT_EPSILON,
}


def _factory(reader: str, test: str, sym: str = "") -> Factory:
    key = (reader, test, sym)
    factory = _FACTORIES.get(key)
    if factory is None:
        nan = " or v != v" if sym in ("<=", ">=") else ""
        source = _HEADER + _READERS[reader] + _TESTS[test].format(sym=sym, nan=nan) + _FOOTER
        namespace: dict[str, Any] = dict(_GLOBALS)
        exec(compile(source, f"<acteon.rules fused {reader}/{test}{sym}>", "exec"), namespace)
        factory = _FACTORIES[key] = namespace["factory"]
    return factory


def reader_of(left: ir.Expr) -> tuple[str, str | None, str | None]:
    """``(reader, key, map attribute)`` for an operand (``call`` when nothing can be inlined)."""
    if isinstance(left, ir.Field) and isinstance(left.base, ir.Field):
        middle = left.base
        if isinstance(middle.base, ir.Ident) and middle.base.name == "action":
            if middle.name == "payload":
                return "payload", left.name, None
            if middle.name in ("metadata", "trace_context"):
                return "label", left.name, middle.name
    return "call", None, None


_SYMBOLS = {ir.BinaryOp.GT: ">", ir.BinaryOp.LT: "<", ir.BinaryOp.GE: ">=", ir.BinaryOp.LE: "<="}
_STRING_TESTS = {
    ir.BinaryOp.CONTAINS: "contains_str",
    ir.BinaryOp.STARTS_WITH: "starts_with_str",
    ir.BinaryOp.ENDS_WITH: "ends_with_str",
}


def fused(
    op: ir.BinaryOp,
    left_node: ir.Expr,
    left: Callable[[Any], Any],
    lit: Any,
    fail: Callable[..., Any],
) -> Callable[[Any], Any] | None:
    """A one-frame closure for ``left <op> lit`` or ``None`` when this shape is not covered."""
    t = type(lit)
    test: str | None = None
    sym = ""
    members: frozenset[str] | None = None
    if op in _SYMBOLS:
        sym = _SYMBOLS[op]
        if t is int:
            test = "order_int"
        elif t is float and lit == lit:
            test = "order_float"
        elif t is str:
            test = "order_str"
    elif op in _STRING_TESTS and t is str:
        test = _STRING_TESTS[op]
    elif op is ir.BinaryOp.IN and t is list and lit and all(type(i) is str for i in lit):
        test = "in_strings"
        members = frozenset(lit)
    elif op is ir.BinaryOp.EQ:
        if t is int:
            test = "eq_int"
        elif t is float:
            test = "eq_float"
        elif t is bool or lit is None:
            test = "eq_identity"
    if test is None:
        return None
    reader, key, attr = reader_of(left_node)
    get_map = None
    if attr is not None:
        from operator import attrgetter

        get_map = attrgetter(f"action.{attr}")
    flit = float(lit) if t is int or t is float else None
    factory = _factory(reader, test, sym)
    fn: Callable[[Any], Any] = factory(lit, flit, members, key, left, get_map, fail, op, left_node)
    return fn
