"""Trusted marks on actions the gateway dispatches to itself.

A group notification or a state-machine notification goes through the whole
pipeline (rules, audit, events) like any action. The rule that produced it may
match it again -- a ``group`` rule with a broad condition would swallow its own
notification into a new group. Payload flags such as ``_group_dispatch`` cannot
tell the two apart safely, because a caller could send the same flag. So the
dispatcher marks the action's id in a context variable for the duration of its
own ``dispatch`` call: only code running inside that call (the verdict handlers)
sees the mark, and nothing an outside caller sends can set it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from acteon._action import Action

_MARKS: ContextVar[dict[str, str] | None] = ContextVar("acteon_internal_dispatch", default=None)


@contextmanager
def internal_dispatch(action: Action, origin: str) -> Iterator[None]:
    """Mark ``action`` as sent by the gateway itself (``origin``: ``group``, ``state_machine``...)."""
    current = _MARKS.get()
    marks = dict(current) if current else {}
    marks[action.id] = origin
    token = _MARKS.set(marks)
    try:
        yield
    finally:
        _MARKS.reset(token)


def internal_origin(action: Action) -> str | None:
    """The origin the gateway marked this action with, or ``None`` for outside actions."""
    marks = _MARKS.get()
    return None if not marks else marks.get(action.id)
