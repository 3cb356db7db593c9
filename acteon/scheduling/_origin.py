"""Which background job, if any, is dispatching an action right now.

The scheduled-action job re-dispatches a stored action through the full
pipeline. The pipeline must trust that this dispatch *is* the delivery (so the
action's own ``schedule`` rule does not delay it again, and a quota does not
count it a second time, DECISIONS D11/D12), while a payload or label that merely
*claims* to be a delivery (upstream's ``_scheduled_dispatch``) is not trusted.

The trust therefore travels out of band, in a context variable set by the job
for the one action id it delivers: nothing an API caller sends can set it, and
a nested dispatch of another action inside a provider does not inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from acteon._action import Action

Origin = Literal["scheduled", "recurring"]

_ORIGIN: ContextVar[tuple[Origin, str] | None] = ContextVar("acteon_dispatch_origin", default=None)


def dispatch_origin(action: Action) -> Origin | None:
    """``"scheduled"`` or ``"recurring"`` when ``action`` is being delivered by that
    background job, ``None`` for every other dispatch.

    Features that treat deliveries differently read this, e.g. a quota does not
    count a ``"scheduled"`` delivery again (it was counted when accepted).
    """
    current = _ORIGIN.get()
    if current is None or current[1] != action.id:
        return None
    return current[0]


@contextmanager
def trusted_dispatch(origin: Origin, action_id: str) -> Iterator[None]:
    """Mark dispatches of ``action_id`` in this context as deliveries of ``origin``."""
    token = _ORIGIN.set((origin, action_id))
    try:
        yield
    finally:
        _ORIGIN.reset(token)


__all__ = ["Origin", "dispatch_origin", "trusted_dispatch"]
