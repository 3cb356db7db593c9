"""Quotas and budgets across OS processes: exact counts, one notification, one alert.

4 spawned processes each build an ``AsyncGateway`` on one shared SQLite file
(or one Redis key prefix) and dispatch at the same instant with several tasks
each. The atomic counter increment makes the quota exact, the window's claim
makes the overage notification single, and the one increment that crosses a
budget's limit sends its alert.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from acteon import AsyncGateway
from acteon.budget import spend_key
from acteon.quotas import QuotaWindow
from acteon.state._base import StateStore
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix
from tests.quotas import _mp_workers as workers

pytestmark = pytest.mark.anyio

PROCESSES = 4
PER_PROCESS = 50  # 200 dispatches in all
WINDOW = 3600


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as executor:
        pids = list(executor.map(workers.warm_up, [0.5] * PROCESSES))
        assert len(set(pids)) == PROCESSES
        yield executor


class Shared:
    def __init__(self, backend: str, target: str, prefix: str, state: StateStore) -> None:
        self.backend, self.target, self.prefix, self.state = backend, target, prefix, state
        now = time.time()
        # Every process starts its clock at the next hour boundary: no run straddles a window.
        self.offset = (int(now) // WINDOW + 1) * WINDOW - now

    def race(self, pool: ProcessPoolExecutor, **arg: Any) -> Counter[str]:
        start_at = time.time() + 0.5
        arg["per_process"] = PER_PROCESS
        futures = [
            pool.submit(workers.run, self.backend, self.target, self.prefix, start_at, self.offset, arg)
            for _ in range(PROCESSES)
        ]
        total: Counter[str] = Counter()
        for future in futures:
            total.update(future.result(timeout=120))
        return total

    async def count(self, key: str) -> int:
        return int(await self.state.get(key) or 0)


@pytest.fixture(params=["sqlite", REDIS_PARAM])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shared]:
    if request.param == "sqlite":
        path = str(tmp_path / "shared.db")
        async with workers.open_state("sqlite", path, "") as state:
            yield Shared("sqlite", path, "", state)
        return
    url = require_redis()
    prefix = redis_prefix()
    try:
        async with workers.open_state("redis", url, prefix) as state:
            yield Shared("redis", url, prefix, state)
    finally:
        await _delete_prefix(url, prefix)


async def test_stored_quota_admits_exactly_max_actions(pool: ProcessPoolExecutor, shared: Shared) -> None:
    # The policy is stored by this process and found by the others through the store.
    async with AsyncGateway(state=shared.state, background=False) as admin:
        await admin.create_quota_policy({"namespace": "mp", "tenant": "t", "max_actions": 37,
                                         "window": "hourly", "overage_behavior": "block"})
    outcomes = shared.race(pool)
    assert outcomes == {"executed": 37, "quota_exceeded": 4 * PER_PROCESS - 37}
    assert await shared.count(workers.EXECUTED_KEY) == 37


async def test_concurrent_creates_leave_one_policy(pool: ProcessPoolExecutor, shared: Shared) -> None:
    start_at = time.time() + 0.5
    futures = [pool.submit(workers.create, shared.backend, shared.target, shared.prefix, start_at, "race")
               for _ in range(PROCESSES)]
    assert sum(f.result(timeout=60) for f in futures) == 1
    async with AsyncGateway(state=shared.state, background=False) as admin:
        listed = await admin.list_quota_policies(tenant="race")
        assert len(listed) == 1
        assert await shared.state.get("_system:_quotas:quota:idx:mp:race") == listed[0].id


async def test_notification_is_sent_once_across_processes(pool: ProcessPoolExecutor, shared: Shared) -> None:
    policy = {"namespace": "mp", "tenant": "t", "max_actions": 10, "window": "hourly",
              "overage_behavior": {"notify": {"target": "ops"}}}
    outcomes = shared.race(pool, quota_policies=[policy])
    assert outcomes == {"executed": 4 * PER_PROCESS}
    assert await shared.count(workers.EXECUTED_KEY) == 4 * PER_PROCESS
    assert await shared.count(workers.NOTIFIED_KEY) == 1


async def test_budget_spend_is_exact_and_alerts_once(pool: ProcessPoolExecutor, shared: Shared) -> None:
    budget = {"namespace": "mp", "tenant": "t", "limit": 0.5, "window": "hourly", "alert_provider": "ops"}
    outcomes = shared.race(pool, provider_costs={"email": 0.003}, budgets=[budget])
    assert outcomes == {"executed": 4 * PER_PROCESS}
    index = QuotaWindow.HOURLY.bucket(datetime.fromtimestamp(time.time() + shared.offset, UTC)).index
    spent = await shared.state.get(spend_key("mp", "t", QuotaWindow.HOURLY, index))
    assert spent == str(4 * PER_PROCESS * 3000)  # 200 x 0.003, in micro-units: no lost update
    assert await shared.count(workers.NOTIFIED_KEY) == 1  # the alert of the one crossing increment
