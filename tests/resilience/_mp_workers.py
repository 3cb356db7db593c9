"""Work done inside the spawned processes of ``test_multiprocess.py`` (importable, pytest-free).

Each process opens its own store and its own ``CircuitBreaker`` for one
provider, waits for the common start instant, then races 25 concurrent tasks
on the shared breaker state.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from acteon.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState
from acteon.state._base import StateStore

TASKS = 25


def _open(backend: str, target: str, prefix: str) -> StateStore:
    if backend == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        return SQLiteStateStore(target)
    from acteon.state.redis import RedisStateStore

    store: StateStore = RedisStateStore(target, prefix=prefix)
    return store


async def _probe(cb: CircuitBreaker) -> tuple[int, int]:
    """Permits after the recovery timeout: how many probes were admitted, how many transitions seen."""
    results = await asyncio.gather(*(cb.try_acquire_permit() for _ in range(TASKS)))
    admitted = sum(1 for state, _ in results if state is CircuitState.HALF_OPEN)
    transitions = sum(1 for _, tr in results if tr is not None)
    return admitted, transitions


async def _trip(cb: CircuitBreaker) -> tuple[int, int]:
    """Concurrent retryable failures: how many saw the Closed -> Open transition."""
    results = await asyncio.gather(*(cb.record_failure() for _ in range(TASKS)))
    return sum(1 for tr in results if tr is not None), TASKS


def run(scenario: str, backend: str, target: str, prefix: str, start_at: float, arg: Any) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        store = _open(backend, target, prefix)
        async with store:
            config = CircuitBreakerConfig(failure_threshold=int(arg), success_threshold=1, recovery_timeout_seconds=0)
            cb = CircuitBreaker("email", config, store=store)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            return await (_probe(cb) if scenario == "probe" else _trip(cb))

    return asyncio.run(main())


def warm_up(seconds: float) -> int:
    import acteon.state.sqlite  # noqa: F401  (pay the import before the race)

    time.sleep(seconds)
    return os.getpid()
