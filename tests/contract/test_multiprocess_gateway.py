"""Exactly-once across OS processes, through the whole gateway.

4 spawned processes each build their own ``AsyncGateway`` on one shared SQLite
file (or one Redis key prefix) and dispatch at the same instant, with several
asyncio tasks per process. The provider counts executions in the shared store,
so a double execution anywhere would show up in the total:

- 20 dispatches sharing one ``dedup_key`` execute once (19 ``Deduplicated``),
  also when they are retries of one action id that meet on the dispatch lock;
- 1,000 dispatches under ``max_count: 100`` execute exactly 100 (900 ``Throttled``);
- dispatches of one action id are never inside the provider in two processes at
  once (the store-level lock test is
  ``test_multiprocess.py::test_lock_excludes_other_processes``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from acteon.audit._model import AuditQuery
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.contract import _mp_gateway_workers as workers

pytestmark = pytest.mark.anyio

PROCESSES = 4
WINDOW = 3600  # the throttle rule's window_seconds


class Shared(SharedStore):
    """The shared state and audit stores, with the totals the tests compare."""

    def race(self, pool: SpawnPool, scenario: str, arg: dict[str, Any] | None = None) -> Counter[str]:
        """Run the scenario in every process at one common instant; outcome kinds summed."""
        now = time.time()
        # Every gateway clock starts at the next window boundary (same offset everywhere).
        offset = (int(now) // WINDOW + 1) * WINDOW - now
        total: Counter[str] = Counter()
        for result in pool.race(workers.run, self.where, scenario, offset, arg or {}, lead=0.3, timeout=60):
            total.update(result)
        return total

    async def executions(self) -> int:
        return int(await self.store.get(workers.EXECUTIONS_KEY) or 0)

    async def audited(self) -> Counter[str]:
        page = await self.audit.query(AuditQuery(namespace="mp", tenant="t", limit=1000))
        return Counter(r.outcome for r in page.records)


pool = pool_fixture(workers, processes=PROCESSES)
shared = shared_fixture(Shared, state=True, audit=True)


async def test_shared_dedup_key_executes_once(pool: SpawnPool, shared: Shared) -> None:
    outcomes = shared.race(pool, "dedup")
    assert outcomes == {"executed": 1, "deduplicated": 19}
    assert await shared.executions() == 1
    assert await shared.audited() == {"executed": 1, "deduplicated": 19}


async def test_retries_of_one_action_execute_once(pool: SpawnPool, shared: Shared) -> None:
    outcomes = shared.race(pool, "dedup_same_action", {"action_id": str(uuid.uuid4())})
    assert outcomes == {"executed": 1, "deduplicated": 19}
    assert await shared.executions() == 1


async def test_throttle_admits_exactly_max_count(pool: SpawnPool, shared: Shared) -> None:
    outcomes = shared.race(pool, "throttle")
    assert outcomes == {"executed": 100, "throttled": 900}
    assert await shared.executions() == 100
    assert await shared.audited() == {"executed": 100, "throttled": 900}


async def test_one_action_is_never_executing_in_two_processes(
    pool: SpawnPool, shared: Shared, tmp_path: Path
) -> None:
    log = tmp_path / "provider.log"
    log.write_text("")
    outcomes = shared.race(pool, "exclusive", {"action_id": str(uuid.uuid4()), "log": str(log)})
    assert outcomes == {"executed": PROCESSES * 5}  # "allow": every dispatch runs, one at a time
    assert await shared.executions() == PROCESSES * 5
    lines = log.read_text().split()
    holders = max_holders = 0
    for event in lines[::2]:
        holders += 1 if event == "B" else -1
        max_holders = max(max_holders, holders)
    assert holders == 0
    assert max_holders == 1
    assert len(set(lines[1::2])) == PROCESSES  # every process got its turn
