"""IR -> Python closures (compiled once, at load).

Design rules, because ``aevaluate`` sits on the gateway's hot path:

* no tree walking at evaluation: every node becomes a closure over the
  closures of its children;
* the common YAML shapes are fused: ``action.<attr> == "x"`` is one Python
  frame around a C-level ``attrgetter``; payload paths index dicts directly
  and fall back to a slow path only to produce the exact error or Null;
* comparisons against a literal are specialised on the literal's type, while
  keeping the exact typed semantics (``bool`` is not ``int``, float epsilon,
  NaN ordering);
* error texts are computed only when an error happens; each evaluation error
  is annotated with the source text of the operand that failed (``field``).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from acteon.rules import ir
from acteon.rules._builtins import BUILTINS
from acteon.rules._errors import (
    EvalError,
    RuleTypeError,
    UndefinedFunction,
    UndefinedVariable,
)
from acteon.rules._ops import compile_binary
from acteon.rules._time import unix_seconds
from acteon.rules._values import I64_MAX, I64_MIN, negate, normalize, type_name

Fn = ir.Evaluator
_Compiler = Callable[[Any], Fn]
_COMPILERS: dict[type, _Compiler] = {}


def compile_expr(node: ir.Expr) -> Fn:
    """Compile one IR node (and its subtree) into a closure."""
    compiler = _COMPILERS.get(type(node))
    if compiler is None:
        for klass, fn in _COMPILERS.items():
            if isinstance(node, klass):
                compiler = fn
                break
        else:
            raise TypeError(f"cannot compile IR node {type(node).__name__}")
    return compiler(node)


def _register(*types: type) -> Callable[[_Compiler], _Compiler]:
    def deco(fn: _Compiler) -> _Compiler:
        for t in types:
            _COMPILERS[t] = fn
        return fn

    return deco


def annotate(err: EvalError, node: ir.Expr) -> None:
    """Attach the failing operand's source text to an error that has none yet."""
    if err.field is None:
        err.field = node.to_source()


# --------------------------------------------------------------------------- literals


def constant_value(node: ir.Expr) -> tuple[bool, Any]:
    """``(True, value)`` when ``node`` is a constant (literal or list/map of literals)."""
    if isinstance(node, ir.Literal):
        return True, node.value()
    if isinstance(node, ir.List):
        values = []
        for item in node.items:
            ok, v = constant_value(item)
            if not ok:
                return False, None
            values.append(v)
        return True, values
    if isinstance(node, ir.Map):
        mapping = {}
        for key, item in node.entries:
            ok, v = constant_value(item)
            if not ok:
                return False, None
            mapping[key] = v
        return True, mapping
    return False, None


@_register(ir.Null, ir.Bool, ir.Int, ir.Float, ir.String)
def _literal(node: ir.Literal) -> Fn:
    value = node.value()
    return lambda ctx: value


@_register(ir.List)
def _list(node: ir.List) -> Fn:
    ok, value = constant_value(node)
    if ok:
        return lambda ctx: value
    fns = [compile_expr(i) for i in node.items]
    return lambda ctx: [f(ctx) for f in fns]


@_register(ir.Map)
def _map(node: ir.Map) -> Fn:
    ok, value = constant_value(node)
    if ok:
        return lambda ctx: value
    pairs = [(k, compile_expr(v)) for k, v in node.entries]
    return lambda ctx: {k: f(ctx) for k, f in pairs}


# --------------------------------------------------------------------------- identifiers and paths

_ACTION_STR_ATTRS = frozenset(
    {"id", "namespace", "tenant", "provider", "action_type", "dedup_key", "status", "fingerprint"}
)
_ACTION_DICT_ATTRS = frozenset({"metadata", "trace_context"})


def _env_lookup(name: str) -> Fn:
    def fn(ctx: Any) -> Any:
        value = ctx.env.get(name)
        if value is None:
            # Not in the environment: a lookup the caller provides (the gateway's ``budget``)?
            lookups = ctx.lookups
            if lookups is not None and name in lookups:
                return ctx.lookup(name)
            raise UndefinedVariable(name, field=name)
        keys = ctx.env_keys
        if keys is not None:
            keys.add(name)
        return value

    return fn


def _ident(name: str) -> Fn:
    if name == "action":
        return lambda ctx: ctx.action_map()
    if name in ("env", "environment"):
        return lambda ctx: ctx.env
    if name == "now":
        return lambda ctx: unix_seconds(ctx.now)
    if name == "time":
        return lambda ctx: ctx.time_value()
    return _env_lookup(name)


@_register(ir.Ident)
def _compile_ident(node: ir.Ident) -> Fn:
    return _ident(node.name)


def _field_step(base: Fn, name: str, source: ir.Expr) -> Fn:
    def fn(ctx: Any) -> Any:
        value = base(ctx)
        if type(value) is dict:
            return value.get(name)
        raise RuleTypeError(f"cannot access field '{name}' on {type_name(value)}", field=source.to_source())

    return fn


def _walk_slow(value: Any, names: tuple[str, ...], node: ir.Expr) -> Any:
    """Exact semantics of a chain of field accesses: missing leaf Null, else a type error."""
    for name in names:
        if isinstance(value, dict):
            value = value.get(name)
        else:
            shown = type_name(normalize(value))
            raise RuleTypeError(f"cannot access field '{name}' on {shown}", field=node.to_source())
    return normalize(value)


def _payload_path(names: tuple[str, ...], node: ir.Expr) -> Fn:
    # Fast path: dict.get on exact dicts with the common leaf types returned as they are;
    # anything else takes the exact slow path (errors, dict subclasses, big ints, lists).
    _lo, _hi = I64_MIN, I64_MAX
    if len(names) == 1:
        (k1,) = names

        def one(ctx: Any) -> Any:
            payload = ctx.action.payload
            if type(payload) is dict:
                v: Any = payload.get(k1)
                t = type(v)
                if t is str or v is None or t is float or t is bool or (t is int and _lo <= v <= _hi):
                    return v
                return normalize(v)
            return _walk_slow(payload, names, node)

        return one
    if len(names) == 2:
        k1, k2 = names

        def two(ctx: Any) -> Any:
            payload = ctx.action.payload
            if type(payload) is dict:
                inner = payload.get(k1)
                if type(inner) is dict:
                    v: Any = inner.get(k2)
                    t = type(v)
                    if t is str or v is None or t is float or t is bool or (t is int and _lo <= v <= _hi):
                        return v
                    return normalize(v)
            return _walk_slow(payload, names, node)

        return two

    def many(ctx: Any) -> Any:
        payload = ctx.action.payload
        v = payload
        for k in names:
            if type(v) is not dict:
                return _walk_slow(payload, names, node)
            v = v.get(k)
        return normalize(v)

    return many


def payload_key_equals(key: str, lit: str, node: ir.Expr) -> Fn:
    """Fused ``action.payload.<key> == "<lit>"`` (the most common YAML predicate)."""
    names = (key,)

    def eq(ctx: Any) -> Any:
        payload = ctx.action.payload
        if type(payload) is dict:
            return payload.get(key) == lit
        return _walk_slow(payload, names, node) == lit

    return eq


def label_equals(attr: str, key: str, lit: str) -> Fn:
    """Fused ``action.metadata.<key> == "<lit>"`` (labels are always strings)."""
    get_map = attrgetter(f"action.{attr}")
    return lambda ctx: get_map(ctx).get(key) == lit


def _split_path(node: ir.Expr) -> tuple[ir.Expr, list[str]]:
    names: list[str] = []
    while isinstance(node, ir.Field):
        names.append(node.name)
        node = node.base
    names.reverse()
    return node, names


def _action_path(names: list[str], node: ir.Expr) -> tuple[Fn, int]:
    """Compile ``action.<names...>``; returns the closure and how many names it consumed."""
    first = names[0]
    if first == "payload":
        if len(names) == 1:
            return (lambda ctx: normalize(ctx.action.payload)), 1
        return _payload_path(tuple(names[1:]), node), len(names)
    if first in _ACTION_STR_ATTRS:
        return attrgetter(f"action.{first}"), 1
    if first in _ACTION_DICT_ATTRS:
        if len(names) >= 2:
            key = names[1]

            def label(ctx: Any) -> Any:
                return getattr(ctx.action, first).get(key)

            return label, 2
        return attrgetter(f"action.{first}"), 1

    def attr(ctx: Any) -> Any:
        return ctx.action_attr(first)

    return attr, 1


@_register(ir.Field)
def _compile_field(node: ir.Field) -> Fn:
    root, names = _split_path(node)
    if isinstance(root, ir.Ident):
        name = root.name
        consumed = 0
        fn: Fn | None = None
        if name == "action":
            fn, consumed = _action_path(names, node)
        elif name in ("env", "environment"):
            key = names[0]

            def env_key(ctx: Any) -> Any:
                keys = ctx.env_keys
                if keys is not None:
                    keys.add(key)
                return ctx.env.get(key)

            fn, consumed = env_key, 1
        elif name == "time":
            key = names[0]
            fn, consumed = (lambda ctx: ctx.time_value().get(key)), 1
        if fn is not None:
            base: ir.Expr = root
            for n in names[:consumed]:
                base = ir.Field(base, n)
            for n in names[consumed:]:
                base = ir.Field(base, n)
                fn = _field_step(fn, n, base)
            return fn
    return _field_step(compile_expr(node.base), node.name, node)


@_register(ir.Index)
def _compile_index(node: ir.Index) -> Fn:
    base = compile_expr(node.base)
    index = compile_expr(node.index)

    def fn(ctx: Any) -> Any:
        b = base(ctx)
        i = index(ctx)
        tb, ti = type(b), type(i)
        if tb is list and ti is int:
            n = len(b)
            pos = i + n if i < 0 else i
            return b[pos] if 0 <= pos < n else None
        if tb is dict and ti is str:
            return b.get(i)
        raise RuleTypeError(f"cannot index {type_name(b)} with {type_name(i)}", field=node.base.to_source())

    return fn


# --------------------------------------------------------------------------- operators


@_register(ir.Unary)
def _compile_unary(node: ir.Unary) -> Fn:
    operand = compile_expr(node.operand)
    if node.op is ir.UnaryOp.NOT:
        return lambda ctx: not operand(ctx)
    ok, value = constant_value(node.operand)
    if ok:
        try:
            folded = negate(value)
        except EvalError:
            pass
        else:
            return lambda ctx: folded

    def neg(ctx: Any) -> Any:
        try:
            return negate(operand(ctx))
        except EvalError as err:
            annotate(err, node.operand)
            raise

    return neg


@_register(ir.Binary)
def _compile_binary(node: ir.Binary) -> Fn:
    return compile_binary(node, compile_expr, constant_value)


@_register(ir.Ternary)
def _compile_ternary(node: ir.Ternary) -> Fn:
    cond = compile_expr(node.cond)
    then = compile_expr(node.then)
    other = compile_expr(node.otherwise)
    return lambda ctx: then(ctx) if cond(ctx) else other(ctx)


def _compile_now_call(node: ir.Call) -> Fn:
    """``now()``: the evaluation clock, like the ``now`` identifier.

    The Rust gateway reads the wall clock here, so ``evaluate_at`` and test
    clocks cannot drive it; acteon reads the context clock (rules.md §8.5 fix).
    """
    if node.args:
        fns = [compile_expr(a) for a in node.args]

        def wrong_arity(ctx: Any) -> Any:
            for f in fns:  # arguments are evaluated first, as for every call
                f(ctx)
            err = RuleTypeError(f"now() expects 0 arguments, got {len(fns)}")
            annotate(err, node)
            raise err

        return wrong_arity
    return lambda ctx: unix_seconds(ctx.now)


@_register(ir.Call)
def _compile_call(node: ir.Call) -> Fn:
    if node.name == "now":
        return _compile_now_call(node)
    fns = [compile_expr(a) for a in node.args]
    impl = BUILTINS.get(node.name)
    name = node.name

    def call(ctx: Any) -> Any:
        args = [f(ctx) for f in fns]
        if impl is None:
            raise UndefinedFunction(name, field=node.to_source())
        try:
            return impl(args)
        except EvalError as err:
            annotate(err, node)
            raise

    return call


def compile_condition(node: ir.Expr) -> Fn:
    """Compile a rule's top-level condition, where only truthiness matters.

    A top-level ``all``/``any`` can return its deciding operand instead of a
    Bool (same truthiness), which saves a call per evaluation.
    """
    if isinstance(node, ir.All | ir.Any) and 2 <= len(node.items) <= 3:
        fns = [compile_expr(i) for i in node.items]
        if isinstance(node, ir.All):
            if len(fns) == 2:
                a, b = fns
                return lambda ctx: a(ctx) and b(ctx)
            a, b, c = fns
            return lambda ctx: a(ctx) and b(ctx) and c(ctx)
        if len(fns) == 2:
            a, b = fns
            return lambda ctx: a(ctx) or b(ctx)
        a, b, c = fns
        return lambda ctx: a(ctx) or b(ctx) or c(ctx)
    return compile_expr(node)


@_register(ir.All)
def _compile_all(node: ir.All) -> Fn:
    fns = [compile_expr(i) for i in node.items]
    if not fns:
        return lambda ctx: True
    if len(fns) == 1:
        (a,) = fns
        return lambda ctx: bool(a(ctx))
    if len(fns) == 2:
        a, b = fns
        return lambda ctx: bool(a(ctx) and b(ctx))
    if len(fns) == 3:
        a, b, c = fns
        return lambda ctx: bool(a(ctx) and b(ctx) and c(ctx))

    def all_n(ctx: Any) -> bool:
        for f in fns:
            if not f(ctx):
                return False
        return True

    return all_n


@_register(ir.Any)
def _compile_any(node: ir.Any) -> Fn:
    fns = [compile_expr(i) for i in node.items]
    if not fns:
        return lambda ctx: False
    if len(fns) == 1:
        (a,) = fns
        return lambda ctx: bool(a(ctx))
    if len(fns) == 2:
        a, b = fns
        return lambda ctx: bool(a(ctx) or b(ctx))
    if len(fns) == 3:
        a, b, c = fns
        return lambda ctx: bool(a(ctx) or b(ctx) or c(ctx))

    def any_n(ctx: Any) -> bool:
        for f in fns:
            if f(ctx):
                return True
        return False

    return any_n


# State, event, semantic and WASM nodes compile in their own module; importing it registers them.
from acteon.rules import _compile_services  # noqa: E402, F401
