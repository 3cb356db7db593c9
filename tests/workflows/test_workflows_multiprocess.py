"""Exactly once across processes: 4 spawned gateways tick one shared store (SQLite file, Redis).

The test process groups alerts into 12 groups and drives 12 state-machine
events into a state with a 60 s timeout, then stops. Four processes, each with
a clock past every due time, call ``tick()`` in a loop at the same moment.
Every group notification and every timeout must be executed by exactly one
of them (flush claims per due time, timeout claims per deadline, D16/D17).
"""

from __future__ import annotations

import time

import pytest

from acteon.outcomes import Grouped, StateChanged
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.workflows import _mp_workers as w

pytestmark = pytest.mark.anyio

PROCESSES = 4
GROUPS = 12
EVENTS = 12

pool = pool_fixture(w, "acteon.workflows.grouping", processes=PROCESSES)
shared = shared_fixture()


async def test_each_flush_and_timeout_fires_exactly_once(pool: SpawnPool, shared: SharedStore) -> None:
    t0 = time.time()
    state = shared.where.open_state()
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

        results = pool.race(w.run, shared.where, t0 + 90, 25, lead=0.5, timeout=120)
        assert sum(r["group_flush"] for r in results) == GROUPS
        assert sum(r["state_timeouts"] for r in results) == EVENTS

        for ident in group_ids | fingerprints:
            assert await state.get(f"{w.NS}:{w.TENANT}:counter:sent:{ident}") == "1", ident
        sent = await state.scan_keys(w.NS, w.TENANT, "counter", "sent:")
        assert len(sent) == GROUPS + EVENTS
        events = await gw.list_events(w.NS, w.TENANT)
        assert {e["state"] for e in events} == {"lost"}
        assert {g["state"] for g in await gw.list_groups(w.NS, w.TENANT)} == {"notified"}
