"""Part D 22, 24 and 33 with OS threads: one store shared by 8 threads, each running its own event loop.

Redis is left out: its client belongs to one event loop (the multi-process
tests cover it instead).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import anyio
import pytest

from acteon.state._base import StateStore
from acteon.state.memory import MemoryStateStore
from acteon.state.sqlite import SQLiteStateStore

THREADS = 8


def _store(backend: str, tmp_path: Path) -> StateStore:
    if backend == "memory":
        return MemoryStateStore()
    return SQLiteStateStore(tmp_path / "threads.db", offload=backend == "sqlite-offload")


@pytest.mark.parametrize("backend", ["memory", "sqlite", "sqlite-offload"])
def test_threads_with_their_own_event_loops(backend: str, tmp_path: Path) -> None:
    store = _store(backend, tmp_path)
    wins: list[int] = []
    errors: list[BaseException] = []
    inside = 0
    max_inside = 0
    barrier = threading.Barrier(THREADS)

    async def work(i: int) -> None:
        nonlocal inside, max_inside
        if await store.check_and_set("ns:t:state:race", f"v{i}"):
            wins.append(i)
        for n in range(50):
            await store.increment("ns:t:counter:c", 1)
            await store.increment("ns:t:counter:mixed", 1 if (i + n) % 2 else -1)
            await store.increment_window("ns:t:rate_limit:w", 1, 2**50)
        lock = store.distributed_lock()
        for _ in range(5):
            guard = await lock.acquire("thread-lock", 30, 30)
            inside += 1
            max_inside = max(max_inside, inside)
            await asyncio.sleep(0.001)
            inside -= 1
            assert await guard.release()

    def run(i: int) -> None:
        try:
            barrier.wait()
            asyncio.run(work(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(wins) == 1
    assert max_inside == 1

    async def check() -> None:
        assert await store.get("ns:t:state:race") == f"v{wins[0]}"
        assert await store.get("ns:t:counter:c") == str(THREADS * 50)
        assert await store.get("ns:t:counter:mixed") == "0"
        assert await store.get("ns:t:rate_limit:w") == str(THREADS * 50)
        await store.aclose()

    anyio.run(check)
