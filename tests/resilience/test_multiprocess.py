"""Exactly-once breaker decisions across 4 spawned processes sharing SQLite or Redis.

Every process has its own breaker object for the same provider and races 25
concurrent tasks at one common instant: after the recovery timeout exactly
one permit becomes the half-open probe, and exactly one failure observes the
Closed -> Open transition (peers.md B6: "number of probes admitted, ideal 1").
"""

from __future__ import annotations

from typing import Any

import pytest

from acteon.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.resilience import _mp_workers

pytestmark = pytest.mark.anyio

PROCESSES = 4

pool = pool_fixture(_mp_workers, processes=PROCESSES)
target = shared_fixture(state=True)


def race(pool: SpawnPool, t: SharedStore, scenario: str, arg: Any) -> list[tuple[int, int]]:
    return pool.race(_mp_workers.run, t.where, scenario, arg, lead=0.5, timeout=120)


async def test_one_half_open_probe_across_processes(pool: SpawnPool, target: SharedStore) -> None:
    cb = CircuitBreaker("email", CircuitBreakerConfig(1, 1, 0), store=target.store)
    await cb.trip()
    results = race(pool, target, "probe", 1)
    assert sum(admitted for admitted, _ in results) == 1
    assert sum(transitions for _, transitions in results) == 1
    data = await cb.data()
    assert data.state is CircuitState.HALF_OPEN and data.probe_started_at_ms is not None


async def test_one_trip_across_processes(pool: SpawnPool, target: SharedStore) -> None:
    cb = CircuitBreaker("email", CircuitBreakerConfig(20), store=target.store)
    await cb.reset()
    results = race(pool, target, "trip", 20)
    assert sum(trips for trips, _ in results) == 1
    assert await cb.state() is CircuitState.OPEN
