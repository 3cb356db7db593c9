"""Chains advanced by 4 OS processes at once on one SQLite file and on one Redis server:
every chain finishes and every step (parallel sub-steps included) runs exactly once."""

from __future__ import annotations

import time

import pytest

from acteon.chains._state import ChainState
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.chains import _mp_chain_workers as workers

pytestmark = pytest.mark.anyio

PROCESSES = 4
CHAINS = 12

pool = pool_fixture(workers, processes=PROCESSES)
target = shared_fixture(filename="chains.db", state=True)


async def test_four_processes_run_every_step_exactly_once(pool: SpawnPool, target: SharedStore) -> None:
    ids = await workers.start_chains(target.where, CHAINS)
    reports = pool.race(workers.run, target.where, CHAINS, lead=0.3, timeout=120)

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
