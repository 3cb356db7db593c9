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

import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from acteon.audit._base import AuditStore
from acteon.audit._model import AuditQuery
from acteon.state._base import StateStore
from tests.conftest import require_redis
from tests.contract import _mp_gateway_workers as workers
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix

pytestmark = pytest.mark.anyio

PROCESSES = 4
WINDOW = 3600  # the throttle rule's window_seconds


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as executor:
        pids = list(executor.map(workers.warm_up, [0.5] * PROCESSES))
        assert len(set(pids)) == PROCESSES
        yield executor


class Shared:
    """What every process opens: the backend name, its file or URL, and the key prefix."""

    def __init__(self, backend: str, target: str, prefix: str, state: StateStore, audit: AuditStore) -> None:
        self.backend = backend
        self.target = target
        self.prefix = prefix
        self.state = state
        self.audit = audit

    def race(self, pool: ProcessPoolExecutor, scenario: str, arg: dict[str, Any] | None = None) -> Counter[str]:
        """Run the scenario in every process at one common instant; outcome kinds summed."""
        now = time.time()
        # Every gateway clock starts at the next window boundary (same offset everywhere).
        offset = (int(now) // WINDOW + 1) * WINDOW - now
        start_at = now + 0.3
        futures = [
            pool.submit(
                workers.run, scenario, self.backend, self.target, self.prefix, w, start_at, offset, arg or {}
            )
            for w in range(PROCESSES)
        ]
        total: Counter[str] = Counter()
        for future in futures:
            total.update(future.result(timeout=60))
        return total

    async def executions(self) -> int:
        return int(await self.state.get(workers.EXECUTIONS_KEY) or 0)

    async def audited(self) -> Counter[str]:
        page = await self.audit.query(AuditQuery(namespace="mp", tenant="t", limit=1000))
        return Counter(r.outcome for r in page.records)


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shared]:
    if request.param == "sqlite":
        path = str(tmp_path / "shared.db")
        state = workers.open_state("sqlite", path, "")
        audit = workers.open_audit("sqlite", path, "")
        async with state, audit:
            yield Shared("sqlite", path, "", state, audit)
        return
    url = require_redis()
    prefix = redis_prefix()
    try:
        state = workers.open_state("redis", url, prefix)
        audit = workers.open_audit("redis", url, prefix)
        async with state, audit:
            yield Shared("redis", url, prefix, state, audit)
    finally:
        await _delete_prefix(url, prefix)


async def test_shared_dedup_key_executes_once(pool: ProcessPoolExecutor, shared: Shared) -> None:
    outcomes = shared.race(pool, "dedup")
    assert outcomes == {"executed": 1, "deduplicated": 19}
    assert await shared.executions() == 1
    assert await shared.audited() == {"executed": 1, "deduplicated": 19}


async def test_retries_of_one_action_execute_once(pool: ProcessPoolExecutor, shared: Shared) -> None:
    outcomes = shared.race(pool, "dedup_same_action", {"action_id": str(uuid.uuid4())})
    assert outcomes == {"executed": 1, "deduplicated": 19}
    assert await shared.executions() == 1


async def test_throttle_admits_exactly_max_count(pool: ProcessPoolExecutor, shared: Shared) -> None:
    outcomes = shared.race(pool, "throttle")
    assert outcomes == {"executed": 100, "throttled": 900}
    assert await shared.executions() == 100
    assert await shared.audited() == {"executed": 100, "throttled": 900}


async def test_one_action_is_never_executing_in_two_processes(
    pool: ProcessPoolExecutor, shared: Shared, tmp_path: Path
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
