"""Atomicity across OS processes: 4 spawned processes share one SQLite file (or Redis server).

Each scenario starts the processes' work at one common instant so they really
overlap: a ``check_and_set`` race (100 workers, one winner), increments and
fixed-window increments (exact totals), a CAS retry loop (no lost update) and a
lock guarding a non-atomic file update (never two holders).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from acteon.state._base import StateStore
from acteon.state.sqlite import SQLiteStateStore
from tests.conftest import require_redis
from tests.contract import _mp_workers
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, _import_redis, redis_prefix

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
        self.backend = backend
        self.target = target
        self.prefix = prefix
        self.store = store


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        path = str(tmp_path / "shared.db")
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


def race(pool: ProcessPoolExecutor, t: Target, scenario: str, arg: Any = None) -> list[int]:
    start_at = time.time() + 0.3
    futures = [
        pool.submit(_mp_workers.run, scenario, t.backend, t.target, t.prefix, w, start_at, arg)
        for w in range(PROCESSES)
    ]
    return [f.result(timeout=60) for f in futures]


async def test_check_and_set_race_has_one_winner(pool: ProcessPoolExecutor, target: Target) -> None:
    wins = race(pool, target, "check_and_set")
    assert sum(wins) == 1
    assert await target.store.get("mp:t:state:race") is not None


async def test_increments_are_not_lost(pool: ProcessPoolExecutor, target: Target) -> None:
    assert sum(race(pool, target, "increment")) == 1000
    assert await target.store.get("mp:t:counter:c") == "1000"


async def test_increment_window_totals_are_exact(pool: ProcessPoolExecutor, target: Target) -> None:
    end = int(time.time() * 1000) + 120_000
    race(pool, target, "increment_window", end)
    assert await target.store.get("mp:t:rate_limit:w") == "1000"


async def test_cas_retry_loop_loses_no_update(pool: ProcessPoolExecutor, target: Target) -> None:
    await target.store.set("mp:t:state:cas", json.dumps({"n": 0}))
    race(pool, target, "cas_loop")
    final = await target.store.get_versioned("mp:t:state:cas")
    assert final is not None
    assert json.loads(final[0]) == {"n": 100}
    assert final[1] == 101


async def test_lock_excludes_other_processes(
    pool: ProcessPoolExecutor, target: Target, tmp_path: Path
) -> None:
    counter, log = tmp_path / "counter.txt", tmp_path / "log.txt"
    counter.write_text("0")
    log.write_text("")
    race(pool, target, "lock", (str(counter), str(log)))
    assert counter.read_text() == str(PROCESSES * 25)
    holders = 0
    max_holders = 0
    lines = log.read_text().split()
    for event, pid in zip(lines[::2], lines[1::2], strict=True):
        holders += 1 if event == "B" else -1
        max_holders = max(max_holders, holders)
        del pid
    assert holders == 0
    assert max_holders == 1
    assert len(set(lines[1::2])) == PROCESSES  # every process got the lock
