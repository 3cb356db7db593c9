"""Compilation of binary operators, specialised on literal right-hand sides.

Most YAML predicates are ``<path> <op> <literal>``. For those the literal's
type is known at load, so the closure only needs to check the field value's
exact type and compare; everything else takes the generic path in
``_values``, which produces the upstream error texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acteon.rules import ir
from acteon.rules._errors import EvalError, RuleTypeError
from acteon.rules._regex import compile_regex
from acteon.rules._values import (
    FLOAT_EPSILON,
    I64_MAX,
    I64_MIN,
    arith,
    op_contains,
    op_ends_with,
    op_in,
    op_starts_with,
    ordered,
    type_name,
    values_equal,
)

Fn = ir.Evaluator
CompileFn = Callable[[ir.Expr], Fn]
ConstFn = Callable[[ir.Expr], tuple[bool, Any]]

B = ir.BinaryOp
_ORDER = {B.LT: "<", B.LE: "<=", B.GT: ">", B.GE: ">="}
_ARITH = {B.ADD: "+", B.SUB: "-", B.MUL: "*", B.DIV: "/", B.MOD: "%"}


def _annotate(err: EvalError, node: ir.Expr) -> None:
    if err.field is None:
        err.field = node.to_source()


def compile_binary(node: ir.Binary, compile_expr: CompileFn, constant_value: ConstFn) -> Fn:
    op = node.op
    left_node, right_node = node.left, node.right
    if op is B.AND or op is B.OR:
        left, right = compile_expr(left_node), compile_expr(right_node)
        if op is B.AND:
            return lambda ctx: bool(right(ctx)) if left(ctx) else False
        return lambda ctx: True if left(ctx) else bool(right(ctx))

    is_const, const = constant_value(right_node)
    if not is_const and op in (B.EQ, B.NE):
        # Equality is symmetric and literals have no side effects: put the literal on the right.
        is_const, const = constant_value(left_node)
        if is_const:
            left_node, right_node = right_node, left_node
    left = compile_expr(left_node)
    if is_const:
        special = _specialise(op, left, const, left_node)
        if special is not None:
            return special
    right = compile_expr(right_node)
    return _generic(op, left, right, left_node)


# --------------------------------------------------------------------------- generic


def _generic(op: ir.BinaryOp, left: Fn, right: Fn, left_node: ir.Expr) -> Fn:
    if op is B.EQ:
        return lambda ctx: values_equal(left(ctx), right(ctx))
    if op is B.NE:
        return lambda ctx: not values_equal(left(ctx), right(ctx))
    impl: Callable[[Any, Any], Any]
    if op in _ORDER:
        symbol = _ORDER[op]

        def impl(a: Any, b: Any) -> Any:
            return ordered(symbol, a, b)

    elif op in _ARITH:
        symbol = _ARITH[op]
        if op is B.ADD:

            def add(ctx: Any) -> Any:
                a = left(ctx)
                b = right(ctx)
                if type(a) is int and type(b) is int:
                    s = a + b
                    if I64_MIN <= s <= I64_MAX:
                        return s
                try:
                    return arith("+", a, b)
                except EvalError as err:
                    _annotate(err, left_node)
                    raise

            return add

        def impl(a: Any, b: Any) -> Any:
            return arith(symbol, a, b)

    elif op is B.CONTAINS:
        impl = op_contains
    elif op is B.STARTS_WITH:
        impl = op_starts_with
    elif op is B.ENDS_WITH:
        impl = op_ends_with
    elif op is B.MATCHES:
        impl = _matches
    elif op is B.IN:
        impl = op_in
    else:  # pragma: no cover - every operator is handled above
        raise TypeError(f"unknown binary operator {op!r}")

    def fn(ctx: Any) -> Any:
        a = left(ctx)
        b = right(ctx)
        try:
            return impl(a, b)
        except EvalError as err:
            _annotate(err, left_node)
            raise

    return fn


def _matches(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:
        return compile_regex(b)(a) is not None
    raise RuleTypeError(f"matches: unsupported types {type_name(a)} and {type_name(b)}")


# --------------------------------------------------------------------------- specialised


def _fail(op: ir.BinaryOp, value: Any, lit: Any, left_node: ir.Expr) -> Any:
    """The slow path of a specialised closure: exact generic semantics (usually an error)."""
    try:
        if op in _ORDER:
            return ordered(_ORDER[op], value, lit)
        if op is B.CONTAINS:
            return op_contains(value, lit)
        if op is B.STARTS_WITH:
            return op_starts_with(value, lit)
        if op is B.ENDS_WITH:
            return op_ends_with(value, lit)
        if op is B.MATCHES:
            return _matches(value, lit)
        return op_in(value, lit)
    except EvalError as err:
        _annotate(err, left_node)
        raise


def _specialise(op: ir.BinaryOp, left: Fn, lit: Any, left_node: ir.Expr) -> Fn | None:
    t = type(lit)
    if op is B.EQ or op is B.NE:
        eq = _eq_literal(left, lit, t)
        if op is B.EQ:
            return eq
        return lambda ctx: not eq(ctx)
    if op in _ORDER:
        return _order_literal(op, left, lit, t, left_node)
    if t is str:
        if op is B.CONTAINS:

            def contains(ctx: Any) -> Any:
                v = left(ctx)
                if type(v) is str:
                    return lit in v
                return _fail(op, v, lit, left_node)

            return contains
        if op is B.STARTS_WITH or op is B.ENDS_WITH:
            starts = op is B.STARTS_WITH

            def affix(ctx: Any) -> Any:
                v = left(ctx)
                if type(v) is str:
                    return v.startswith(lit) if starts else v.endswith(lit)
                return _fail(op, v, lit, left_node)

            return affix
        if op is B.MATCHES:

            def matches(ctx: Any) -> Any:
                v = left(ctx)
                if type(v) is str:
                    try:
                        return compile_regex(lit)(v) is not None
                    except EvalError as err:
                        _annotate(err, left_node)
                        raise
                return _fail(op, v, lit, left_node)

            return matches
    if op is B.IN and t is list:
        if lit and all(type(i) is str for i in lit):
            members = frozenset(lit)

            def in_strings(ctx: Any) -> Any:
                v = left(ctx)
                return type(v) is str and v in members

            return in_strings

        def in_list(ctx: Any) -> Any:
            v = left(ctx)
            for item in lit:
                if values_equal(v, item):
                    return True
            return False

        return in_list
    return None


def _eq_literal(left: Fn, lit: Any, t: type) -> Fn:
    if t is str:
        return lambda ctx: left(ctx) == lit
    if lit is None:
        return lambda ctx: left(ctx) is None
    if t is bool:
        return lambda ctx: left(ctx) is lit
    if t is int:
        flit = float(lit)

        def eq_int(ctx: Any) -> Any:
            v = left(ctx)
            tv = type(v)
            if tv is int:
                return v == lit
            if tv is float:
                return abs(v - flit) < FLOAT_EPSILON
            return False

        return eq_int
    if t is float:

        def eq_float(ctx: Any) -> Any:
            v = left(ctx)
            tv = type(v)
            if tv is float or tv is int:
                return abs(v - lit) < FLOAT_EPSILON
            return False

        return eq_float
    if t is dict:

        def eq_map(ctx: Any) -> Any:
            left(ctx)  # evaluated for its errors; a map never equals anything
            return False

        return eq_map
    return lambda ctx: values_equal(left(ctx), lit)


def _order_literal(op: ir.BinaryOp, left: Fn, lit: Any, t: type, left_node: ir.Expr) -> Fn | None:
    if t is str:
        if op is B.GT:

            def gt_s(ctx: Any) -> Any:
                v = left(ctx)
                return v > lit if type(v) is str else _fail(op, v, lit, left_node)

            return gt_s
        if op is B.LT:

            def lt_s(ctx: Any) -> Any:
                v = left(ctx)
                return v < lit if type(v) is str else _fail(op, v, lit, left_node)

            return lt_s
        if op is B.GE:

            def ge_s(ctx: Any) -> Any:
                v = left(ctx)
                return v >= lit if type(v) is str else _fail(op, v, lit, left_node)

            return ge_s

        def le_s(ctx: Any) -> Any:
            v = left(ctx)
            return v <= lit if type(v) is str else _fail(op, v, lit, left_node)

        return le_s
    if t is not int and t is not float:
        return None
    if t is float and lit != lit:
        return None  # NaN literal: leave it to the generic rules
    flit = float(lit)
    # An int field value compares exactly with an int literal; any float involved
    # compares as floats (upstream converts the int side to f64).
    ilit = lit if t is int else None
    if op is B.GT:

        def gt(ctx: Any) -> Any:
            v = left(ctx)
            tv = type(v)
            if tv is int:
                return v > ilit if ilit is not None else float(v) > flit
            if tv is float:
                return v > flit
            return _fail(op, v, lit, left_node)

        return gt
    if op is B.LT:

        def lt(ctx: Any) -> Any:
            v = left(ctx)
            tv = type(v)
            if tv is int:
                return v < ilit if ilit is not None else float(v) < flit
            if tv is float:
                return v < flit
            return _fail(op, v, lit, left_node)

        return lt
    if op is B.GE:

        def ge(ctx: Any) -> Any:
            v = left(ctx)
            tv = type(v)
            if tv is int:
                return v >= ilit if ilit is not None else float(v) >= flit
            if tv is float:
                return v >= flit or v != v
            return _fail(op, v, lit, left_node)

        return ge

    def le(ctx: Any) -> Any:
        v = left(ctx)
        tv = type(v)
        if tv is int:
            return v <= ilit if ilit is not None else float(v) <= flit
        if tv is float:
            return v <= flit or v != v
        return _fail(op, v, lit, left_node)

    return le
