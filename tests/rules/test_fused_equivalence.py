"""The specialised closures must agree exactly with the generic operator semantics.

``action.payload.x <op> <literal>`` compiles to a fused single-frame closure;
the same comparison with the literal hidden behind an ``Index`` (not a
constant, so nothing is specialised) runs the generic path of ``_values``.
Both must give the same value or the same error text, for any field value.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from acteon.rules import ir
from acteon.rules._errors import EvalError

from ._helpers import action, value_of

B = ir.BinaryOp
OPS = [B.EQ, B.NE, B.LT, B.LE, B.GT, B.GE, B.CONTAINS, B.STARTS_WITH, B.ENDS_WITH, B.IN]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 5, 2**63 - 1, -(2**63), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5.0, 0.3, float("nan")]),
    st.text(max_size=4),
    st.sampled_from(["", "a", "ab", "5", "é"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=5,
)
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.one_of(st.text(max_size=2), st.integers(-3, 3), st.none()), max_size=3),
)


def _outcome(expr: ir.Expr, payload: Any) -> Any:
    try:
        result = value_of(expr, action(payload=payload))
    except EvalError as err:
        return ("error", str(err))
    if isinstance(result, float) and math.isnan(result):
        return ("nan",)
    return ("value", type(result).__name__, result)


def _hidden(lit: Any) -> ir.Expr:
    return ir.Index(ir.List([ir.literal(lit)]), ir.Int(0))


@settings(max_examples=600, deadline=None)
@given(op=st.sampled_from(OPS), field_value=values, lit=literals, missing=st.booleans())
def test_fused_payload_predicates_match_generic(
    op: ir.BinaryOp, field_value: Any, lit: Any, missing: bool
) -> None:
    payload = {} if missing else {"x": field_value}
    fast = ir.Binary(op, ir.path("action.payload.x"), ir.literal(lit))
    generic = ir.Binary(op, ir.Index(ir.path("action.payload"), ir.String("x")), _hidden(lit))
    assert _outcome(fast, payload) == _outcome(generic, payload)


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(OPS), field_value=values, lit=literals)
def test_call_reader_predicates_match_generic(op: ir.BinaryOp, field_value: Any, lit: Any) -> None:
    # The left side is an arbitrary expression (an Index), so the "call" reader is used.
    payload = {"x": field_value}
    left = ir.Index(ir.path("action.payload"), ir.String("x"))
    fast = ir.Binary(op, left, ir.literal(lit))
    generic = ir.Binary(op, left, _hidden(lit))
    assert _outcome(fast, payload) == _outcome(generic, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.one_of(values, st.dictionaries(st.sampled_from(["x", "y"]), values, max_size=2)))
def test_nested_payload_paths_match_generic(payload: Any) -> None:
    fast = ir.path("action.payload.x.y")
    generic = ir.Field(ir.Field(ir.Index(ir.Ident("action"), ir.String("payload")), "x"), "y")
    assert _outcome(fast, payload) == _outcome(generic, payload)
