"""Branch conditions and next-step selection (workflows.md §3.8, DECISIONS D18).

Fields read the step that just finished: ``success`` (bool), ``body`` and
``body.a.b`` (object keys only -- unlike templates, no array indexes).
Equality is JSON's, type-strict (``1`` is not ``1.0``). A condition written
with ``value: null`` matches null (upstream reads it as "no value" and never
matches); a condition without ``value`` never matches ``eq``/``neq``.
"""

from __future__ import annotations

import math
from typing import Any

from acteon.chains._json import strict_equal
from acteon.chains._model import BranchCondition, ChainConfig
from acteon.chains._state import StepResult


def resolve_field(field: str, result: StepResult) -> Any:
    if field == "success":
        return result.success
    if field == "body":
        return result.response_body
    if field.startswith("body."):
        value = result.response_body
        for seg in field[5:].split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(seg)
        return value
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(op: str, left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        a, b = float(left), float(right)
        if math.isnan(a) or math.isnan(b):
            return False
    elif isinstance(left, str) and isinstance(right, str):
        a, b = left, right  # type: ignore[assignment]
    else:
        return False
    if op == "gt":
        return a > b
    if op == "lt":
        return a < b
    if op == "gte":
        return a >= b
    return a <= b


def matches(cond: BranchCondition, result: StepResult) -> bool:
    """Whether one condition holds for a finished step."""
    value = resolve_field(cond.field, result)
    op = cond.operator
    if op == "exists":
        return value is not None
    if not cond.has_value:
        return False
    if op == "eq":
        return strict_equal(value, cond.value)
    if op == "neq":
        return not strict_equal(value, cond.value)
    if op == "contains":
        return isinstance(value, str) and isinstance(cond.value, str) and cond.value in value
    return _ordered(op, value, cond.value)


def next_step(cfg: ChainConfig, index: int, result: StepResult) -> int | None:
    """Index of the step to run after ``index``, or ``None`` when the chain is done.

    First matching branch, else ``default_next``, else the next step in the
    list -- the fall-through applies to branch targets too.
    """
    step = cfg.steps[index]
    if step.has_branching:
        for cond in step.branches:
            if matches(cond, result):
                return cfg.step_index(cond.target)
        if step.default_next is not None:
            return cfg.step_index(step.default_next)
    return index + 1 if index + 1 < len(cfg.steps) else None
