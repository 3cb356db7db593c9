"""Work done inside the spawned processes of ``test_multiprocess.py``.

Kept in its own module (importable by a ``spawn`` child, free of pytest) with one
entry point, :func:`run`, that opens the shared store and runs a scenario on it
with asyncio.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from acteon.state._base import StateStore
from tests._multiprocess_worker import SharedBackend, wait_until


async def _tasks(count: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*(fn(i) for i in range(count))))


async def _check_and_set_race(store: StateStore, worker: int, arg: Any) -> int:
    results = await _tasks(25, lambda i: store.check_and_set("mp:t:state:race", f"{worker}-{i}", ttl=300))
    return sum(1 for r in results if r)


async def _increment_race(store: StateStore, worker: int, arg: Any) -> int:
    async def adder(i: int) -> None:
        for _ in range(50):
            await store.increment("mp:t:counter:c", 1)

    await _tasks(5, adder)
    return 250


async def _window_race(store: StateStore, worker: int, arg: Any) -> int:
    async def adder(i: int) -> None:
        for _ in range(50):
            await store.increment_window("mp:t:rate_limit:w", 1, int(arg) + worker)

    await _tasks(5, adder)
    return 250


async def _cas_loop(store: StateStore, worker: int, arg: Any) -> int:
    conflicts = 0
    for _ in range(25):
        while True:
            current = await store.get_versioned("mp:t:state:cas")
            assert current is not None
            value, version = current
            body = json.dumps({"n": json.loads(value)["n"] + 1})
            if (await store.compare_and_swap("mp:t:state:cas", version, body)).ok:
                break
            conflicts += 1
    return conflicts


async def _lock_exclusion(store: StateStore, worker: int, arg: Any) -> int:
    """Non-atomic read-modify-write of a shared file, guarded by the store's lock."""
    counter_path, log_path = arg
    lock = store.distributed_lock()
    lock.poll_interval = 0.005
    pid = os.getpid()
    for _ in range(25):
        guard = await lock.acquire("mp-lock", 10, 30)
        try:
            with open(log_path, "a") as log:
                log.write(f"B {pid}\n")
            with open(counter_path) as f:
                n = int(f.read() or "0")
            time.sleep(0.001)  # widen the window a lost update would need
            with open(counter_path, "w") as f:
                f.write(str(n + 1))
            with open(log_path, "a") as log:
                log.write(f"E {pid}\n")
        finally:
            assert await guard.release()
    return 25


SCENARIOS: dict[str, Callable[[StateStore, int, Any], Awaitable[int]]] = {
    "check_and_set": _check_and_set_race,
    "increment": _increment_race,
    "increment_window": _window_race,
    "cas_loop": _cas_loop,
    "lock": _lock_exclusion,
}


def run(shared: SharedBackend, worker: int, start_at: float, scenario: str, arg: Any) -> int:
    """Open the store, wait for the common start time, run the scenario, close."""

    async def main() -> int:
        async with shared.open_state() as store:
            await wait_until(start_at)
            return await SCENARIOS[scenario](store, worker, arg)

    return asyncio.run(main())
