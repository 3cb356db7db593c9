"""Errors raised while a condition is evaluated (rules.md §12).

These are the engine-level errors. ``str()`` is exactly the upstream display
(``type error: cannot compare string and int``). The public entry points wrap
them in :class:`acteon.RuleEvaluationError`, keeping the raw error as
``__cause__``; the trace records their text per rule.

``field`` is filled in by the compiled closure that raised, with the source
text of the operand that failed (for YAML predicates: the field path), so the
gateway can say *where* a rule broke, not only *why*.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EvalError(Exception):
    """Base of every evaluation error; ``str()`` is ``<prefix><detail>``."""

    prefix: ClassVar[str] = ""

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(f"{self.prefix}{detail}")

    def __str__(self) -> str:
        return f"{self.prefix}{self.detail}"


class RuleTypeError(EvalError):
    """Operand or argument of the wrong type (``type error: ...``)."""

    prefix = "type error: "


class UndefinedVariable(EvalError):
    """A bare identifier that is neither built in nor in the environment."""

    prefix = "undefined variable: "


class UndefinedFunction(EvalError):
    """A call to a function the engine does not know."""

    prefix = "undefined function: "


class StateAccessError(EvalError):
    """The state store failed, or a stored value could not be interpreted."""

    prefix = "state access error: "


class EvaluationError(EvalError):
    """Arithmetic faults and missing runtime support (``evaluation error: ...``)."""

    prefix = "evaluation error: "


class InvalidRegex(EvalError):
    """A ``matches`` pattern outside the supported (Rust/RE2) dialect."""

    prefix = "invalid regex: "


class InvalidTimezone(EvalError):
    """A timezone name that is not an exact IANA id."""

    prefix = "invalid timezone: "


class Pending(Exception):
    """Raised by a closure that needs an asynchronous answer (state read, embedding, WASM).

    The driver resolves ``request`` (awaiting the store or service), caches the
    answer on the context, and re-runs the rule from its start; closures are
    pure apart from these cached reads, so re-running is safe.
    Deliberately not an :class:`EvalError`: traces must not record it.
    """

    def __init__(self, request: tuple[Any, ...], awaitable: Any = None) -> None:
        super().__init__(request)
        self.request = request
        self.awaitable = awaitable
        self.index = 0
