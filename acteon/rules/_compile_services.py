"""Compilers for the nodes that read services: state, events, semantic match, WASM.

Split from :mod:`acteon.rules._compile` (which imports this module to register
them). Every lookup goes through the evaluation context, which answers from
its cache, a synchronous store, or raises ``Pending`` for the async driver.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from acteon._timefmt import parse_rfc3339
from acteon.rules import ir
from acteon.rules._builtins import parse_i64
from acteon.rules._compile import Fn, _register, annotate, compile_expr
from acteon.rules._errors import EvalError, EvaluationError, StateAccessError
from acteon.rules._values import I64_MAX, display

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
