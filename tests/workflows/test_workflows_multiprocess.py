"""Exactly once across processes: 4 spawned gateways tick one shared store (SQLite file, Redis).

The test process groups alerts into 12 groups and drives 12 state-machine
events into a state with a 60 s timeout, then stops. Four processes, each with
a clock past every due time, call ``tick()`` in a loop at the same moment.
Every group notification and every timeout must be executed by exactly one
of them (flush claims per due time, timeout claims per deadline, D16/D17).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from acteon.outcomes import Grouped, StateChanged
from acteon.state._base import StateStore
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix
from tests.workflows import _mp_workers as w

pytestmark = pytest.mark.anyio

PROCESSES = 4
GROUPS = 12
EVENTS = 12


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as executor:
        pids = list(executor.map(w.warm_up, [0.5] * PROCESSES))
        assert len(set(pids)) == PROCESSES
        yield executor


class Shared:
    def __init__(self, backend: str, target: str, prefix: str) -> None:
        self.backend, self.target, self.prefix = backend, target, prefix

    def open(self) -> StateStore:
        return w.open_state(self.backend, self.target, self.prefix)


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shared]:
    if request.param == "sqlite":
        yield Shared("sqlite", str(tmp_path / "shared.db"), "")
        return
    url = require_redis()
    prefix = redis_prefix()
    try:
        yield Shared("redis", url, prefix)
    finally:
        await _delete_prefix(url, prefix)


async def test_each_flush_and_timeout_fires_exactly_once(pool: ProcessPoolExecutor, shared: Shared) -> None:
    t0 = time.time()
    state = shared.open()
    group_ids: set[str] = set()
    fingerprints: set[str] = set()
    async with state, w.gateway(state, t0) as gw:
        for g in range(GROUPS):
            for i in range(3):
                outcome = await gw.dispatch(w.alert(f"c{g}", i))
                assert isinstance(outcome, Grouped)
                group_ids.add(outcome.group_id)
        for n in range(EVENTS):
            changed = await gw.dispatch(w.node_down(f"n{n}"))
            assert isinstance(changed, StateChanged) and changed.new_state == "down"
            fingerprints.add(changed.fingerprint)
        assert len(group_ids) == GROUPS and len(fingerprints) == EVENTS

        start_at = time.time() + 0.5
        futures = [
            pool.submit(w.run, shared.backend, shared.target, shared.prefix, k, start_at, t0 + 90, 25)
            for k in range(PROCESSES)
        ]
        results = [f.result(timeout=120) for f in futures]
        assert sum(r["group_flush"] for r in results) == GROUPS
        assert sum(r["state_timeouts"] for r in results) == EVENTS

        for ident in group_ids | fingerprints:
            assert await state.get(f"{w.NS}:{w.TENANT}:counter:sent:{ident}") == "1", ident
        sent = await state.scan_keys(w.NS, w.TENANT, "counter", "sent:")
        assert len(sent) == GROUPS + EVENTS
        events = await gw.list_events(w.NS, w.TENANT)
        assert {e["state"] for e in events} == {"lost"}
        assert {g["state"] for g in await gw.list_groups(w.NS, w.TENANT)} == {"notified"}
