"""Exactly once across OS processes: 4 spawned processes tick one shared SQLite file (or Redis).

The parent stores 40 scheduled actions and 3 every-minute recurring actions,
then four processes run ``tick()`` in a loop on a shared accelerated clock
(10 gateway minutes per real second). Every scheduled action must execute
exactly once, and every recurring occurrence exactly once, with each
definition's ``execution_count`` equal to its executions.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from acteon.outcomes import Scheduled
from acteon.testing import FakeClock
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.scheduling import _mp_workers
from tests.scheduling.conftest import NS, TENANT, make_action

pytestmark = pytest.mark.anyio

PROCESSES = 4
SPEED = 600.0  # gateway seconds per real second
SCHEDULED = 40
RECURRING = 3
RUN_SECONDS = 4.0

pool = pool_fixture(_mp_workers, processes=PROCESSES)
target = shared_fixture(state=True)


async def test_each_item_executes_exactly_once(pool: SpawnPool, target: SharedStore, tmp_path: Path) -> None:
    out = tmp_path / "executions.txt"
    out.write_text("")
    real0 = time.time()
    base = real0
    # The parent writes the work with its own gateway, at the shared clock's origin.
    gw = _mp_workers.build_gateway(target.store, FakeClock(base), str(out))
    scheduled_ids: list[str] = []
    recurring_ids: list[str] = []
    async with gw:
        for k in range(SCHEDULED):
            action = make_action(dispatch_at=gw.clock.now() + timedelta(seconds=30 * (k + 1)))
            assert isinstance(await gw.dispatch(action), Scheduled)
            scheduled_ids.append(action.id)
        for _ in range(RECURRING):
            rec = await gw.create_recurring(NS, TENANT, provider="email", action_type="tick",
                                            cron_expr="* * * * *", metadata={"rid": "{{recurring_id}}"})
            recurring_ids.append(rec.id)

    handled = pool.race(_mp_workers.run, target.where, real0, base, SPEED, RUN_SECONDS, str(out),
                        lead=0.3, timeout=120)

    lines = [line.split() for line in out.read_text().splitlines()]
    ids = Counter(parts[0] for parts in lines)
    duplicates = {i: n for i, n in ids.items() if n > 1}
    assert duplicates == {}, f"executed more than once: {duplicates}"
    assert sum(handled) == len(lines)
    # Every scheduled action (all due within 20 gateway minutes) ran once.
    assert all(ids[i] == 1 for i in scheduled_ids), [i for i in scheduled_ids if ids[i] != 1]
    # Every recurring occurrence ran once, and the definitions agree with the executions.
    per_definition = Counter(parts[1] for parts in lines if parts[1] != "-")
    async with _mp_workers.build_gateway(target.store, FakeClock(base), str(out)) as check:
        for rid in recurring_ids:
            rec = await check.get_recurring(NS, TENANT, rid)
            assert rec is not None
            assert rec.execution_count == per_definition[rid]
            assert per_definition[rid] >= 5
        assert await check.list_scheduled(NS, TENANT) == []
    # The work was really shared: more than one process executed something.
    assert len({parts[2] for parts in lines}) > 1
