"""Work done inside the spawned processes of ``test_multiprocess.py`` (importable, pytest-free).

Each process opens its own store and its own ``CircuitBreaker`` for one
provider, waits for the common start instant, then races 25 concurrent tasks
on the shared breaker state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from acteon.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState
from tests._multiprocess_worker import SharedBackend, wait_until

TASKS = 25


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


def run(shared: SharedBackend, worker: int, start_at: float, scenario: str, arg: Any) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        async with shared.open_state() as store:
            config = CircuitBreakerConfig(failure_threshold=int(arg), success_threshold=1, recovery_timeout_seconds=0)
            cb = CircuitBreaker("email", config, store=store)
            await wait_until(start_at)
            return await (_probe(cb) if scenario == "probe" else _trip(cb))

    return asyncio.run(main())
