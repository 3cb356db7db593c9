"""``FakeClock``: time that only moves when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio.lowlevel

from acteon._timefmt import coerce_datetime


class FakeClock:
    """A settable clock. ``sleep`` advances it instantly (after yielding once)."""

    def __init__(self, start: datetime | str | float | None = None) -> None:
        if start is None:
            start = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
        self._t = self._to_epoch(start)

    @staticmethod
    def _to_epoch(value: datetime | str | float) -> float:
        if isinstance(value, int | float):
            return float(value)
        return coerce_datetime(value).timestamp()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def time(self) -> float:
        return self._t

    def advance(self, seconds: float | timedelta) -> None:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds < 0:
            raise ValueError("a FakeClock only moves forward; use set() to jump")
        self._t += seconds

    def set(self, when: datetime | str | float) -> None:
        self._t = self._to_epoch(when)

    async def sleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()
        if seconds > 0:
            self._t += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
