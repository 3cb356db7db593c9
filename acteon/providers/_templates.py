"""Placeholder templates for HTTP providers: ``{{ payload.user.email }}``.

A template is literal text with ``{{ path }}`` placeholders. A path is a
dotted name rooted at one of:

* ``action`` -- the action's wire form (``action.id``, ``action.tenant``,
  ``action.payload.x``, ``action.metadata.team``, ...),
* ``payload`` -- short for ``action.payload``,
* ``metadata`` -- short for ``action.metadata``.

Segments walk objects by key and lists by zero-based index. There are no
expressions, filters or calls: a placeholder can only *read* a value, so a
template can never run code. Templates are compiled once (when the provider
is built) and sizes are bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acteon._action import Action

MAX_TEMPLATE_CHARS = 65_536
MAX_PATH_SEGMENTS = 16
MAX_BODY_DEPTH = 32

ROOTS = frozenset({"action", "payload", "metadata"})
ACTION_FIELDS = frozenset(
    {
        "id",
        "namespace",
        "tenant",
        "provider",
        "action_type",
        "payload",
        "metadata",
        "dedup_key",
        "status",
        "fingerprint",
        "starts_at",
        "ends_at",
        "created_at",
        "trace_context",
        "dispatch_at",
    }
)

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*")


class TemplateError(ValueError):
    """A template could not be compiled (bad syntax, unknown root, too big)."""


class MissingValue(LookupError):
    """A placeholder's path does not exist in the action being rendered."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"template value '{path}' is missing from the action")


@dataclass(frozen=True, slots=True)
class _Ref:
    path: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.path)


def _compile_ref(expression: str, where: str) -> _Ref:
    expression = expression.strip()
    if not _PATH.fullmatch(expression):
        raise TemplateError(
            f"{where}: unsupported placeholder '{{{{ {expression} }}}}' "
            "(only dotted paths such as 'payload.user.email' are allowed)"
        )
    path = tuple(expression.split("."))
    if len(path) > MAX_PATH_SEGMENTS:
        raise TemplateError(f"{where}: placeholder '{expression}' is nested too deeply")
    if path[0] not in ROOTS:
        raise TemplateError(
            f"{where}: placeholder '{expression}' must start with one of: {', '.join(sorted(ROOTS))}"
        )
    if path[0] == "action" and len(path) > 1 and path[1] not in ACTION_FIELDS:
        raise TemplateError(f"{where}: action has no field '{path[1]}'")
    return _Ref(path)


class StringTemplate:
    """One compiled string: literal parts and placeholder references."""

    __slots__ = ("parts", "source")

    def __init__(self, source: str, parts: tuple[str | _Ref, ...]) -> None:
        self.source = source
        self.parts = parts

    @classmethod
    def compile(cls, source: str, *, where: str = "template") -> StringTemplate:
        if not isinstance(source, str):
            raise TemplateError(f"{where}: expected a string, got {type(source).__name__}")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"{where}: template longer than {MAX_TEMPLATE_CHARS} characters")
        parts: list[str | _Ref] = []
        position = 0
        for match in _PLACEHOLDER.finditer(source):
            if match.start() > position:
                parts.append(source[position : match.start()])
            parts.append(_compile_ref(match.group(1), where))
            position = match.end()
        if position < len(source):
            parts.append(source[position:])
        return cls(source, tuple(parts))

    @property
    def is_static(self) -> bool:
        """True when the template has no placeholders."""
        return not any(isinstance(part, _Ref) for part in self.parts)

    @property
    def whole_ref(self) -> _Ref | None:
        """The reference when the template is exactly one placeholder (spaces around it allowed)."""
        refs = [part for part in self.parts if isinstance(part, _Ref)]
        if len(refs) != 1:
            return None
        if any(isinstance(part, str) and part.strip() for part in self.parts):
            return None
        return refs[0]

    def static_prefix(self) -> str:
        """The literal text before the first placeholder."""
        prefix = []
        for part in self.parts:
            if isinstance(part, _Ref):
                break
            prefix.append(part)
        return "".join(prefix)

    def render(self, context: Mapping[str, Any], *, escape: Callable[[str], str] | None = None) -> str:
        """Render as text; ``escape`` (e.g. percent-encoding) applies to placeholder values only."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = to_text(lookup(context, part.path))
                out.append(escape(text) if escape is not None else text)
        return "".join(out)

    def render_value(self, context: Mapping[str, Any]) -> Any:
        """Render keeping the JSON type when the template is a single placeholder."""
        ref = self.whole_ref
        if ref is not None:
            return lookup(context, ref.path)
        return self.render(context)


def compile_body(template: Any, *, where: str = "body_template", _depth: int = 0) -> Any:
    """Compile a body template: strings become :class:`StringTemplate`, containers recurse.

    Object keys are kept literally; only values are templated.
    """
    if _depth > MAX_BODY_DEPTH:
        raise TemplateError(f"{where}: nested more than {MAX_BODY_DEPTH} levels")
    if isinstance(template, str):
        return StringTemplate.compile(template, where=where)
    if isinstance(template, Mapping):
        compiled: dict[str, Any] = {}
        for key, value in template.items():
            if not isinstance(key, str):
                raise TemplateError(f"{where}: object keys must be strings, got {key!r}")
            compiled[key] = compile_body(value, where=f"{where}.{key}", _depth=_depth + 1)
        return compiled
    if isinstance(template, list | tuple):
        return [
            compile_body(item, where=f"{where}[{index}]", _depth=_depth + 1)
            for index, item in enumerate(template)
        ]
    if template is None or isinstance(template, bool | int | float):
        return template
    raise TemplateError(f"{where}: unsupported value of type {type(template).__name__}")


def render_body(compiled: Any, context: Mapping[str, Any]) -> Any:
    """Render a compiled body template to a JSON-able value."""
    if isinstance(compiled, StringTemplate):
        return compiled.render_value(context)
    if isinstance(compiled, dict):
        return {key: render_body(value, context) for key, value in compiled.items()}
    if isinstance(compiled, list):
        return [render_body(item, context) for item in compiled]
    return compiled


def template_context(action: Action, wire: dict[str, Any] | None = None) -> dict[str, Any]:
    """The names a template can read for ``action``."""
    if wire is None:
        wire = action.to_wire()
    return {"action": wire, "payload": wire["payload"], "metadata": wire["metadata"]}


def lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Walk ``path`` through ``context``; raise :class:`MissingValue` when a step is absent."""
    value: Any = context
    for segment in path:
        if isinstance(value, Mapping):
            if segment not in value:
                raise MissingValue(".".join(path))
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit():
            index = int(segment)
            if index >= len(value):
                raise MissingValue(".".join(path))
            value = value[index]
        else:
            raise MissingValue(".".join(path))
    return value


def to_text(value: Any) -> str:
    """How a value reads inside a larger string: JSON for everything but strings."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
