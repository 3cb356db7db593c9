"""Payload templates of chain steps (workflows.md §3.7, DECISIONS D18).

A template is any JSON value. Strings may hold ``{{expr}}`` placeholders:

* a string that is exactly one placeholder (surrounding whitespace allowed)
  becomes the referenced value with its type kept (number, object, null...);
* otherwise every placeholder is replaced by the value's text (``null``,
  ``true``, numbers as upstream writes them, compact sorted JSON for objects).

Expressions: ``origin.payload[.path]``, ``origin.namespace|tenant|action_type|
provider|id``, ``origin.metadata[.KEY]``, ``prev.body[.path]``,
``steps.NAME.body[.path]``, ``chain_id`` and ``step_index``; ``prev`` and
``steps.NAME`` also offer ``success`` and ``error``, which upstream documents
but renders as null. Unknown paths render as null.

Expansion is one left-to-right pass: text that a placeholder produced is never
scanned again, so a value containing ``{{...}}`` cannot expand itself (the
upstream loops forever on that). Nesting depth and rendered size are bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from acteon.chains._json import render_inline

MAX_TEMPLATE_DEPTH = 64
"""Deepest nesting of objects/arrays a template may have."""
MAX_RENDERED_CHARS = 1_048_576
"""Most characters inline placeholders may add to one rendered payload."""

_ORIGIN_FIELDS = frozenset({"namespace", "tenant", "action_type", "provider", "id"})
_RESULT_FIELDS = frozenset({"body", "response_body", "success", "error"})


class TemplateRenderError(ValueError):
    """A template could not be rendered within the bounds."""


@dataclass(slots=True)
class StepView:
    """What templates can read of a finished step."""

    success: bool
    response_body: Any
    error: str | None


@dataclass(slots=True)
class TemplateContext:
    """Everything a placeholder can reach while one step's payload is rendered."""

    origin: dict[str, Any]
    """The origin action's wire form."""
    prev: StepView | None
    step_lookup: Callable[[str], StepView | None]
    chain_id: str
    step_index: int


# --------------------------------------------------------------------------- scanning


def placeholders(text: str) -> Iterator[str]:
    """The expressions of a string, in order, as the renderer sees them."""
    whole = whole_value_expression(text)
    if whole is not None:
        yield whole
        return
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return
        end = text.find("}}", start + 2)
        if end < 0:
            return
        yield text[start + 2:end]
        pos = end + 2


def whole_value_expression(text: str) -> str | None:
    """The expression when the (trimmed) string is exactly one placeholder."""
    trimmed = text.strip()
    if (
        len(trimmed) >= 4
        and trimmed.startswith("{{")
        and trimmed.endswith("}}")
        and trimmed.count("{{") == 1
        and trimmed.find("}}") == len(trimmed) - 2
    ):
        return trimmed[2:-2]
    return None


# --------------------------------------------------------------------------- resolving


def navigate(value: Any, segments: list[str]) -> Any:
    """Walk objects by key and arrays by non-negative index; anything else is null."""
    for seg in segments:
        if isinstance(value, dict):
            value = value.get(seg)
        elif isinstance(value, list):
            index = _parse_index(seg)
            value = value[index] if index is not None and index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _parse_index(seg: str) -> int | None:
    digits = seg[1:] if seg.startswith("+") else seg
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


def _result_field(view: StepView | None, parts: list[str]) -> Any:
    if view is None or not parts:
        return None
    name = parts[0]
    if name in ("body", "response_body"):
        return navigate(view.response_body, parts[1:])
    if name == "success":
        return view.success
    if name == "error":
        return view.error
    return None


def resolve(expr: str, ctx: TemplateContext) -> Any:
    """The value of one placeholder expression (null when it leads nowhere)."""
    parts = expr.split(".")
    root = parts[0]
    if root == "origin" and len(parts) >= 2:
        field = parts[1]
        if field == "payload":
            return navigate(ctx.origin.get("payload"), parts[2:])
        if field in _ORIGIN_FIELDS:
            return ctx.origin.get(field)
        if field == "metadata":
            labels = ctx.origin.get("metadata") or {}
            return labels.get(parts[2]) if len(parts) >= 3 else dict(labels)
        return None
    if root == "prev":
        return _result_field(ctx.prev, parts[1:])
    if root == "steps" and len(parts) >= 3:
        return _result_field(ctx.step_lookup(parts[1]), parts[2:])
    if expr == "chain_id":
        return ctx.chain_id
    if expr == "step_index":
        return ctx.step_index
    return None


# --------------------------------------------------------------------------- rendering


def render(template: Any, ctx: TemplateContext) -> Any:
    """Render a payload template; raises :class:`TemplateRenderError` past the bounds."""
    budget = [MAX_RENDERED_CHARS]
    return _render(template, ctx, 0, budget)


def _render(value: Any, ctx: TemplateContext, depth: int, budget: list[int]) -> Any:
    if isinstance(value, str):
        return _render_string(value, ctx, budget) if "{{" in value else value
    if isinstance(value, dict):
        if depth >= MAX_TEMPLATE_DEPTH:
            raise TemplateRenderError(f"payload template nests deeper than {MAX_TEMPLATE_DEPTH} levels")
        return {k: _render(v, ctx, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_TEMPLATE_DEPTH:
            raise TemplateRenderError(f"payload template nests deeper than {MAX_TEMPLATE_DEPTH} levels")
        return [_render(v, ctx, depth + 1, budget) for v in value]
    return value


def _render_string(text: str, ctx: TemplateContext, budget: list[int]) -> Any:
    whole = whole_value_expression(text)
    if whole is not None:
        return resolve(whole, ctx)
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        end = text.find("}}", start + 2)
        if end < 0:
            break  # an unterminated placeholder stays literal, as upstream
        out.append(text[pos:start])
        piece = render_inline(resolve(text[start + 2:end], ctx))
        budget[0] -= len(piece)
        if budget[0] < 0:
            raise TemplateRenderError(
                f"payload template renders more than {MAX_RENDERED_CHARS} characters of placeholder text"
            )
        out.append(piece)
        pos = end + 2
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- load-time checks


def check_template(template: Any, step_names: frozenset[str]) -> list[str]:
    """Problems of a template found without rendering it: ``[(where): problem, ...]``."""
    problems: list[str] = []
    _check(template, "$", 0, step_names, problems)
    return problems


def _check(value: Any, path: str, depth: int, names: frozenset[str], problems: list[str]) -> None:
    if isinstance(value, str):
        for expr in placeholders(value):
            problem = _check_expression(expr, names)
            if problem is not None:
                problems.append(f"at `{path}`: {problem}")
        return
    if isinstance(value, dict | list) and depth >= MAX_TEMPLATE_DEPTH:
        problems.append(f"at `{path}`: nests deeper than {MAX_TEMPLATE_DEPTH} levels")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{path}.{key}", depth + 1, names, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1, names, problems)


def _check_expression(expr: str, names: frozenset[str]) -> str | None:
    shown = "{{" + expr + "}}"
    if expr != expr.strip():
        return (
            f"`{shown}` has spaces inside the braces, which are not trimmed (it would render as null); "
            f"write `{{{{{expr.strip()}}}}}`"
        )
    if not expr:
        return "empty placeholder `{{}}`"
    parts = expr.split(".")
    root = parts[0]
    if expr in ("chain_id", "step_index"):
        return None
    if root == "origin":
        if len(parts) < 2:
            return f"`{shown}` needs a field: origin.payload, origin.metadata, origin.namespace, ..."
        if parts[1] in _ORIGIN_FIELDS or parts[1] in ("payload", "metadata"):
            return None
        return f"unknown origin field `{parts[1]}` in `{shown}`"
    if root == "prev":
        if len(parts) < 2 or parts[1] not in _RESULT_FIELDS:
            return f"`{shown}`: use prev.body[.path], prev.success or prev.error"
        return None
    if root == "steps":
        if len(parts) < 3 or parts[2] not in _RESULT_FIELDS:
            return f"`{shown}`: use steps.NAME.body[.path], steps.NAME.success or steps.NAME.error"
        if parts[1] not in names:
            return f"`{shown}` references unknown step `{parts[1]}`"
        return None
    return (
        f"unknown template root `{root}` in `{shown}` "
        "(expected origin, prev, steps, chain_id or step_index)"
    )
