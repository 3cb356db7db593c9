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

import json
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any

from acteon._timefmt import parse_rfc3339
from acteon.rules import ir
from acteon.rules._builtins import BUILTINS, parse_i64
from acteon.rules._errors import (
    EvalError,
    EvaluationError,
    RuleTypeError,
    StateAccessError,
    UndefinedFunction,
    UndefinedVariable,
)
from acteon.rules._ops import compile_binary
from acteon.rules._time import unix_seconds
from acteon.rules._values import I64_MAX, I64_MIN, display, negate, normalize, type_name

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
    value = normalize(value)
    for name in names:
        if type(value) is dict:
            value = value.get(name)
        else:
            raise RuleTypeError(f"cannot access field '{name}' on {type_name(value)}", field=node.to_source())
    return normalize(value)


def _payload_path(names: tuple[str, ...], node: ir.Expr) -> Fn:
    # Fast path: plain indexing; any miss or non-dict goes to the exact slow path.
    _lookup = LookupError
    _type = TypeError
    _lo, _hi = I64_MIN, I64_MAX
    if len(names) == 1:
        (k1,) = names

        def one(ctx: Any) -> Any:
            payload = ctx.action.payload
            try:
                v = payload[k1]
            except (_lookup, _type):
                return _walk_slow(payload, names, node)
            t = type(v)
            if t is str or t is float or t is bool or (t is int and _lo <= v <= _hi):
                return v
            return normalize(v)

        return one
    if len(names) == 2:
        k1, k2 = names

        def two(ctx: Any) -> Any:
            payload = ctx.action.payload
            try:
                v = payload[k1][k2]
            except (_lookup, _type):
                return _walk_slow(payload, names, node)
            t = type(v)
            if t is str or t is float or t is bool or (t is int and _lo <= v <= _hi):
                return v
            return normalize(v)

        return two

    def many(ctx: Any) -> Any:
        payload = ctx.action.payload
        v = payload
        try:
            for k in names:
                v = v[k]
        except (_lookup, _type):
            return _walk_slow(payload, names, node)
        if type(v) is str:
            return v
        return normalize(v)

    return many


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


@_register(ir.Call)
def _compile_call(node: ir.Call) -> Fn:
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


# --------------------------------------------------------------------------- state and events


def _record(ctx: Any, label: str) -> None:
    keys = ctx.state_keys
    if keys is not None:
        keys.add(label)


def _read_state(ctx: Any, kind: str, key: str, node: ir.Expr) -> Any:
    try:
        return ctx.state_get(kind, key)
    except EvalError as err:
        annotate(err, node)
        raise


@_register(ir.StateGet)
def _compile_state_get(node: ir.StateGet) -> Fn:
    key = node.key
    label = f"state:{key}"

    def fn(ctx: Any) -> Any:
        _record(ctx, label)
        return _read_state(ctx, "state", key, node)

    return fn


@_register(ir.StateCounter)
def _compile_state_counter(node: ir.StateCounter) -> Fn:
    key = node.key
    label = f"counter:{key}"

    def fn(ctx: Any) -> Any:
        _record(ctx, label)
        raw = _read_state(ctx, "counter", key, node)
        if raw is None:
            return 0
        try:
            return parse_i64(raw)
        except ValueError as exc:
            raise StateAccessError(f"counter is not an integer: {exc}", field=node.to_source()) from None

    return fn


def _timestamp_reason(text: str) -> str:
    # Approximates chrono's ParseError wording for the common failure kinds.
    if not text:
        return "premature end of input"
    if text[:1].isdigit() and len(text) < 20:
        return "premature end of input"
    return "input contains invalid characters"


@_register(ir.StateTimeSince)
def _compile_state_time_since(node: ir.StateTimeSince) -> Fn:
    key = node.key
    label = f"time_since:{key}"

    def fn(ctx: Any) -> Any:
        _record(ctx, label)
        raw = _read_state(ctx, "state", key, node)
        if raw is None:
            return I64_MAX
        try:
            stored: datetime = parse_rfc3339(raw)
        except ValueError:
            raise StateAccessError(
                f"cannot parse stored timestamp '{raw}': {_timestamp_reason(raw)}", field=node.to_source()
            ) from None
        delta = ctx.now - stored
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        secs = abs(micros) // 1_000_000
        return secs if micros >= 0 else -secs

    return fn


def _event_state_of(raw: str) -> str | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("state"), str):
        return doc["state"]  # type: ignore[no-any-return]
    return None


@_register(ir.HasActiveEvent)
def _compile_has_active_event(node: ir.HasActiveEvent) -> Fn:
    event_type = node.event_type
    label_fn = None if node.label_value is None else compile_expr(node.label_value)

    def fn(ctx: Any) -> Any:
        ident = event_type
        if label_fn is not None:
            label = label_fn(ctx)
            if label is not None:
                ident = f"{event_type}:{display(label)}"
        raw = _read_state(ctx, "active_events", ident, node)
        if raw is None:
            return False
        state = _event_state_of(raw)
        return state not in ("resolved", "closed")

    return fn


def _event_state_fn(fp_node: ir.Expr, node: ir.Expr) -> Fn:
    fp_fn = compile_expr(fp_node)

    def fn(ctx: Any) -> Any:
        fp = fp_fn(ctx)
        if fp is None:
            return None
        raw = _read_state(ctx, "event_state", display(fp), node)
        if raw is None:
            return None
        state = _event_state_of(raw)
        return raw if state is None else state

    return fn


@_register(ir.GetEventState)
def _compile_get_event_state(node: ir.GetEventState) -> Fn:
    return _event_state_fn(node.fingerprint, node)


@_register(ir.EventInState)
def _compile_event_in_state(node: ir.EventInState) -> Fn:
    get = _event_state_fn(node.fingerprint, node)
    wanted = node.state

    def fn(ctx: Any) -> Any:
        value = get(ctx)
        return type(value) is str and value == wanted

    return fn


# --------------------------------------------------------------------------- semantic and wasm


def payload_text(payload: Any) -> str:
    """The payload as compact JSON with sorted keys (the default semantic text)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@_register(ir.SemanticMatch)
def _compile_semantic(node: ir.SemanticMatch) -> Fn:
    topic = node.topic
    threshold = float(node.threshold)
    text_fn = None if node.text_field is None else compile_expr(node.text_field)

    def fn(ctx: Any) -> Any:
        if ctx.embedding is None:
            raise EvaluationError("semantic_match requires embedding support", field=node.to_source())
        text = display(text_fn(ctx)) if text_fn is not None else payload_text(ctx.action.payload)
        if not text or text == "null":
            return False
        try:
            similarity = ctx.similarity(text, topic)
        except EvalError as err:
            annotate(err, node)
            raise
        if ctx.state_keys is not None:  # tracing: remember the last computation
            ctx.semantic = {
                "extracted_text": text,
                "topic": topic,
                "similarity": similarity,
                "threshold": threshold,
            }
        return similarity >= threshold

    return fn


@_register(ir.WasmCall)
def _compile_wasm(node: ir.WasmCall) -> Fn:
    plugin = node.plugin
    function = node.function

    def fn(ctx: Any) -> Any:
        if ctx.wasm is None:
            raise EvaluationError(
                f"WASM plugin '{plugin}' called but no WASM runtime configured", field=node.to_source()
            )
        try:
            return ctx.wasm_call(plugin, function)
        except EvalError as err:
            annotate(err, node)
            raise

    return fn
