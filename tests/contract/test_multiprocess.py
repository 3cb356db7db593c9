"""Atomicity across OS processes: 4 spawned processes share one SQLite file (or Redis server).

Each scenario starts the processes' work at one common instant so they really
overlap: a ``check_and_set`` race (100 workers, one winner), increments and
fixed-window increments (exact totals), a CAS retry loop (no lost update) and a
lock guarding a non-atomic file update (never two holders).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.contract import _mp_workers

pytestmark = pytest.mark.anyio

PROCESSES = 4

pool = pool_fixture(_mp_workers, processes=PROCESSES)
target = shared_fixture(state=True)


def race(pool: SpawnPool, t: SharedStore, scenario: str, arg: Any = None) -> list[int]:
    return pool.race(_mp_workers.run, t.where, scenario, arg, lead=0.3, timeout=60)


async def test_check_and_set_race_has_one_winner(pool: SpawnPool, target: SharedStore) -> None:
    wins = race(pool, target, "check_and_set")
    assert sum(wins) == 1
    assert await target.store.get("mp:t:state:race") is not None


async def test_increments_are_not_lost(pool: SpawnPool, target: SharedStore) -> None:
    assert sum(race(pool, target, "increment")) == 1000
    assert await target.store.get("mp:t:counter:c") == "1000"


async def test_increment_window_totals_are_exact(pool: SpawnPool, target: SharedStore) -> None:
    end = int(time.time() * 1000) + 120_000
    race(pool, target, "increment_window", end)
    assert await target.store.get("mp:t:rate_limit:w") == "1000"


async def test_cas_retry_loop_loses_no_update(pool: SpawnPool, target: SharedStore) -> None:
    await target.store.set("mp:t:state:cas", json.dumps({"n": 0}))
    race(pool, target, "cas_loop")
    final = await target.store.get_versioned("mp:t:state:cas")
    assert final is not None
    assert json.loads(final[0]) == {"n": 100}
    assert final[1] == 101


async def test_lock_excludes_other_processes(
    pool: SpawnPool, target: SharedStore, tmp_path: Path
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
