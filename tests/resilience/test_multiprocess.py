"""Exactly-once breaker decisions across 4 spawned processes sharing SQLite or Redis.

Every process has its own breaker object for the same provider and races 25
concurrent tasks at one common instant: after the recovery timeout exactly
one permit becomes the half-open probe, and exactly one failure observes the
Closed -> Open transition (peers.md B6: "number of probes admitted, ideal 1").
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from acteon.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState
from acteon.state._base import StateStore
from acteon.state.sqlite import SQLiteStateStore
from tests.conftest import require_redis
from tests.resilience import _mp_workers
from tests.resilience.conftest import REDIS_PARAM, _delete_prefix

pytestmark = pytest.mark.anyio

PROCESSES = 4


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as executor:
        pids = list(executor.map(_mp_workers.warm_up, [0.5] * PROCESSES))
        assert len(set(pids)) == PROCESSES
        yield executor


class Target:
    def __init__(self, backend: str, target: str, prefix: str, store: StateStore) -> None:
        self.backend, self.target, self.prefix, self.store = backend, target, prefix, store


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        path = str(tmp_path / "shared.db")
        async with SQLiteStateStore(path) as store:
            yield Target("sqlite", path, "", store)
        return
    url = require_redis()
    from acteon.state.redis import RedisStateStore

    prefix = f"acteon-test-{uuid.uuid4().hex[:12]}"
    try:
        async with RedisStateStore(url, prefix=prefix) as redis_store:
            yield Target("redis", url, prefix, redis_store)
    finally:
        await _delete_prefix(url, prefix)


def race(pool: ProcessPoolExecutor, t: Target, scenario: str, arg: Any) -> list[tuple[int, int]]:
    start_at = time.time() + 0.5
    futures = [pool.submit(_mp_workers.run, scenario, t.backend, t.target, t.prefix, start_at, arg)
               for _ in range(PROCESSES)]
    return [f.result(timeout=120) for f in futures]


async def test_one_half_open_probe_across_processes(pool: ProcessPoolExecutor, target: Target) -> None:
    cb = CircuitBreaker("email", CircuitBreakerConfig(1, 1, 0), store=target.store)
    await cb.trip()
    results = race(pool, target, "probe", 1)
    assert sum(admitted for admitted, _ in results) == 1
    assert sum(transitions for _, transitions in results) == 1
    data = await cb.data()
    assert data.state is CircuitState.HALF_OPEN and data.probe_started_at_ms is not None


async def test_one_trip_across_processes(pool: ProcessPoolExecutor, target: Target) -> None:
    cb = CircuitBreaker("email", CircuitBreakerConfig(20), store=target.store)
    await cb.reset()
    results = race(pool, target, "trip", 20)
    assert sum(trips for trips, _ in results) == 1
    assert await cb.state() is CircuitState.OPEN
