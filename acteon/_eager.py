"""Cheap concurrency primitives for the dispatch hot path.

:class:`FastLimiter` bounds concurrency without yielding to the event loop
when a slot is free (anyio's ``CapacityLimiter`` always checkpoints, which
costs a full event-loop iteration per provider call).
"""

from __future__ import annotations

from collections import deque

import anyio


class FastLimiter:
    """A counting limiter that only waits (and only yields) when it is full."""

    __slots__ = ("_in_use", "_total", "_waiters")

    def __init__(self, total: int) -> None:
        self._total = total
        self._in_use = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def in_use(self) -> int:
        return self._in_use

    async def acquire(self) -> None:
        if self._in_use < self._total and not self._waiters:
            self._in_use += 1
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                # We were handed a slot but are leaving: pass it on.
                self.release()
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        if self._waiters:
            # Hand the slot straight to the next waiter; in_use stays the same.
            self._waiters.popleft().set()
        else:
            self._in_use -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
