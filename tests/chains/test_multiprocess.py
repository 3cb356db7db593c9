"""Chains advanced by 4 OS processes at once on one SQLite file and on one Redis server:
every chain finishes and every step (parallel sub-steps included) runs exactly once."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from acteon.chains._state import ChainState
from acteon.state._base import StateStore
from acteon.state.sqlite import SQLiteStateStore
from tests.chains import _mp_chain_workers as workers
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, _import_redis, redis_prefix

pytestmark = pytest.mark.anyio

PROCESSES = 4
CHAINS = 12


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as executor:
        pids = list(executor.map(workers.warm_up, [0.5] * PROCESSES))
        assert len(set(pids)) == PROCESSES
        yield executor


class Target:
    def __init__(self, backend: str, target: str, prefix: str, store: StateStore) -> None:
        self.backend = backend
        self.target = target
        self.prefix = prefix
        self.store = store


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        path = str(tmp_path / "chains.db")
        async with SQLiteStateStore(path) as store:
            yield Target("sqlite", path, "", store)
        return
    url = require_redis()
    redis_store = _import_redis("acteon.state.redis", "RedisStateStore")
    prefix = redis_prefix()
    try:
        async with redis_store(url, prefix=prefix) as store:
            yield Target("redis", url, prefix, store)
    finally:
        await _delete_prefix(url, prefix)


async def test_four_processes_run_every_step_exactly_once(pool: ProcessPoolExecutor, target: Target) -> None:
    ids = await workers.start_chains(target.backend, target.target, target.prefix, CHAINS)
    start_at = time.time() + 0.3
    futures = [
        pool.submit(workers.run, target.backend, target.target, target.prefix, w, start_at, CHAINS)
        for w in range(PROCESSES)
    ]
    reports = [f.result(timeout=120) for f in futures]

    for chain_id in ids:
        raw = await target.store.get(f"mp:t:chain:{chain_id}")
        assert raw is not None
        state = ChainState.from_json(raw)
        assert state.status == "completed", (chain_id, state.status, state.step_results)
        assert state.execution_path == ["a", "fan", "b"]
        for step in ("a", "f1", "f2", "b"):
            count = await target.store.get(f"mp:t:counter:{chain_id}:{step}")
            assert count == "1", (chain_id, step, count)
    counters = await target.store.scan_keys("mp", "t", "counter")
    assert len(counters) == CHAINS * workers.STEPS_PER_CHAIN
    # Each chain needs one advance per top-level step; nobody advanced a step twice.
    assert sum(r["advanced"] for r in reports) == CHAINS * 3
    assert sum(1 for r in reports if r["advanced"]) >= 2  # the work really was shared
    assert await target.store.get_ready_chains(int(time.time() * 1000) + 10**9) == []
