"""Work done inside the spawned processes of ``test_multiprocess.py``.

Each process opens the shared store (a SQLite file or a Redis prefix), builds its
own gateway and calls ``tick()`` in a loop. Every process reads the same
accelerated clock -- the system clock, sped up by a common factor from a common
origin -- so cron minutes pass in a fraction of a second while the processes
really overlap. The provider appends one line per execution to a shared file.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from acteon._action import Action
from acteon.state._base import StateStore
from tests._multiprocess_worker import SharedBackend, wait_until


class AcceleratedClock:
    """``speed`` seconds of gateway time per real second, starting at ``base`` at ``real0``."""

    def __init__(self, real0: float, base: float, speed: float) -> None:
        self.real0 = real0
        self.base = base
        self.speed = speed

    def time(self) -> float:
        return self.base + (time.time() - self.real0) * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


def build_gateway(store: StateStore, clock: Any, out_path: str) -> Any:
    from acteon import AsyncGateway
    from acteon.providers import FunctionProvider

    def record(action: Action) -> dict[str, bool]:
        # One short O_APPEND write per execution: lines from processes never interleave.
        line = f"{action.id} {action.metadata.get('rid', '-')} {os.getpid()}\n"
        fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return {"ok": True}

    return AsyncGateway(
        state=store,
        clock=clock,
        background=False,
        providers=[FunctionProvider("email", record, inline=True)],
        config={"executor": {"max_retries": 0}},
        # Claims must outlive a dispatch even at this clock speed (3600 s here is 6 real seconds).
        scheduling={"claim_ttl_seconds": 3600},
    )


def run(shared: SharedBackend, worker: int, start_at: float, real0: float, base: float, speed: float,
        run_seconds: float, out_path: str) -> int:
    """Tick for ``run_seconds`` (real time) from ``start_at``; returns how many items this process handled."""
    stop_at = start_at + run_seconds

    async def main() -> int:
        store = shared.open_state()
        clock = AcceleratedClock(real0, base, speed)
        handled = 0
        async with store:
            gw = build_gateway(store, clock, out_path)
            async with gw:
                await wait_until(start_at)
                while time.time() < stop_at:
                    summary = await gw.tick()
                    handled += summary.get("scheduled_actions", 0) + summary.get("recurring_actions", 0)
                    await asyncio.sleep(0.002)
        return handled

    return asyncio.run(main())
