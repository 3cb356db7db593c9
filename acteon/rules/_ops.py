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
from acteon.rules._fused import fused
from acteon.rules._regex import compile_regex
from acteon.rules._values import (
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
        return _logic_chain(node, compile_expr)

    is_const, const = constant_value(right_node)
    if not is_const and op in (B.EQ, B.NE):
        # Equality is symmetric and literals have no side effects: put the literal on the right.
        is_const, const = constant_value(left_node)
        if is_const:
            left_node, right_node = right_node, left_node
    if is_const and type(const) is str and op in (B.EQ, B.NE):
        fused = _fused_string_eq(left_node, const)
        if fused is not None:
            if op is B.EQ:
                return fused
            return lambda ctx: not fused(ctx)
    left = compile_expr(left_node)
    if is_const:
        special = _specialise(op, left, const, left_node)
        if special is not None:
            return special
    right = compile_expr(right_node)
    return _generic(op, left, right, left_node)


def _fused_string_eq(left: ir.Expr, lit: str) -> Fn | None:
    """One closure for ``action.payload.K == "x"`` / ``action.metadata.K == "x"``."""
    from acteon.rules._compile import label_equals, payload_key_equals

    if not (isinstance(left, ir.Field) and isinstance(left.base, ir.Field)):
        return None
    middle = left.base
    if not (isinstance(middle.base, ir.Ident) and middle.base.name == "action"):
        return None
    if middle.name == "payload":
        return payload_key_equals(left.name, lit, left)
    if middle.name in ("metadata", "trace_context"):
        return label_equals(middle.name, left.name, lit)
    return None


def _logic_chain(node: ir.Binary, compile_expr: CompileFn) -> Fn:
    """``&&`` / ``||``; a chain of one of them (``a && b && c``, as CEL writes it) compiles flat.

    Same result (a bool) and the same left-to-right short-circuit as the nested
    closures, one frame per chain instead of one per operator (like ``All``/``Any``).
    """
    op = node.op
    operands: list[ir.Expr] = []
    stack: list[ir.Expr] = [node]
    while stack:
        item = stack.pop()
        if type(item) is ir.Binary and item.op is op:
            stack.append(item.right)
            stack.append(item.left)
        else:
            operands.append(item)
    fns = [compile_expr(operand) for operand in operands]
    if op is B.AND:
        if len(fns) == 2:
            left, right = fns
            return lambda ctx: bool(right(ctx)) if left(ctx) else False
        if len(fns) == 3:
            a, b, c = fns
            return lambda ctx: bool(a(ctx) and b(ctx) and c(ctx))

        def and_n(ctx: Any) -> bool:
            for f in fns:
                if not f(ctx):
                    return False
            return True

        return and_n
    if len(fns) == 2:
        left, right = fns
        return lambda ctx: True if left(ctx) else bool(right(ctx))
    if len(fns) == 3:
        a, b, c = fns
        return lambda ctx: bool(a(ctx) or b(ctx) or c(ctx))

    def or_n(ctx: Any) -> bool:
        for f in fns:
            if f(ctx):
                return True
        return False

    return or_n


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

        if op is B.SUB or op is B.MUL:
            # Int fast path like ADD; anything else (floats, overflow, type errors)
            # goes through the exact generic semantics.
            is_sub = op is B.SUB

            def sub_or_mul(ctx: Any) -> Any:
                a = left(ctx)
                b = right(ctx)
                if type(a) is int and type(b) is int:
                    r = a - b if is_sub else a * b
                    if I64_MIN <= r <= I64_MAX:
                        return r
                try:
                    return arith(symbol, a, b)
                except EvalError as err:
                    _annotate(err, left_node)
                    raise

            return sub_or_mul

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
    eq_op = B.EQ if op is B.NE else op
    special = fused(eq_op, left_node, left, lit, _fail)
    if special is None:
        special = _other_literal(eq_op, left, lit, left_node)
    if special is None or op is not B.NE:
        return special
    eq = special
    return lambda ctx: not eq(ctx)


def _other_literal(op: ir.BinaryOp, left: Fn, lit: Any, left_node: ir.Expr) -> Fn | None:
    """Literal shapes the fused templates do not cover."""
    t = type(lit)
    if op is B.EQ:
        if t is str:
            return lambda ctx: left(ctx) == lit
        if t is dict:

            def eq_map(ctx: Any) -> Any:
                left(ctx)  # evaluated for its errors; a map never equals anything
                return False

            return eq_map
        return lambda ctx: values_equal(left(ctx), lit)
    if op is B.MATCHES and t is str:

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

        def in_list(ctx: Any) -> Any:
            v = left(ctx)
            for item in lit:
                if values_equal(v, item):
                    return True
            return False

        return in_list
    return None
