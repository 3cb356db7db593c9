"""The one clock every acteon component reads.

TTLs, throttle windows, schedules, group waits, timeouts and cron all ask the
gateway's clock for the time, so a test can swap in ``acteon.testing.FakeClock``
and move time by hand instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import anyio


@runtime_checkable
class Clock(Protocol):
    """What acteon needs from a clock."""

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        ...

    def time(self) -> float:
        """Current time as Unix epoch seconds (float)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (a fake clock just advances)."""
        ...


class SystemClock:
    """Wall-clock time; the default."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def epoch_ms(clock: Clock) -> int:
    """The clock's time in whole epoch milliseconds."""
    return int(clock.time() * 1000)
