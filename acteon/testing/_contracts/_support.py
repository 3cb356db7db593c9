"""How the contracts move time, and a small task helper they share."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.lowlevel

from acteon._clock import SYSTEM_CLOCK, Clock
from acteon.testing._clock import FakeClock


@runtime_checkable
class TimeControl(Protocol):
    """How a contract test moves time for the backend under test.

    The contract states every duration in *nominal* seconds.
    ``scale`` turns a nominal duration into the seconds passed to the backend.
    :meth:`advance` moves time by a nominal duration.
    """

    scale: float
    """Backend seconds per nominal second (1.0 with a fake clock)."""

    real_time: bool
    """True when expiry runs on a clock the test cannot move (then sweeping is the backend's business)."""

    slack: float
    """Extra real seconds allowed in upper bounds on elapsed time (0 with a fake clock)."""

    def time(self) -> float:
        """The backend's current time in epoch seconds."""
        ...

    def now(self) -> datetime:
        """The backend's current time as an aware UTC datetime."""
        ...

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` nominal seconds pass."""
        ...


class FakeTimeControl:
    """For backends that read their time from an injected :class:`~acteon.testing.FakeClock`."""

    scale = 1.0
    real_time = False
    slack = 0.0

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock if clock is not None else FakeClock()

    def time(self) -> float:
        return self.clock.time()

    def now(self) -> datetime:
        return self.clock.now()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


class RealTimeControl:
    """For backends whose TTLs run on real (server) time: durations shrink by ``scale``, then sleep."""

    real_time = True

    def __init__(self, scale: float = 0.15, *, clock: Clock = SYSTEM_CLOCK, slack: float = 0.15) -> None:
        self.scale = scale
        self.clock = clock
        self.slack = slack

    def time(self) -> float:
        return self.clock.time()

    def now(self) -> datetime:
        return self.clock.now()

    async def advance(self, seconds: float) -> None:
        await anyio.sleep(seconds * self.scale)


async def _gather(count: int, worker: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Run ``worker(0..count-1)`` as concurrent tasks and wait for all of them."""
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(worker, i)
