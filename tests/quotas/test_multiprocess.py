"""Quotas and budgets across OS processes: exact counts, one notification, one alert.

4 spawned processes each build an ``AsyncGateway`` on one shared SQLite file
(or one Redis key prefix) and dispatch at the same instant with several tasks
each. The atomic counter increment makes the quota exact, the window's claim
makes the overage notification single, and the one increment that crosses a
budget's limit sends its alert.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from acteon import AsyncGateway
from acteon.audit._base import AuditStore
from acteon.budget import spend_key
from acteon.quotas import QuotaWindow
from acteon.state._base import StateStore
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests._multiprocess_worker import SharedBackend
from tests.quotas import _mp_workers as workers

pytestmark = pytest.mark.anyio

PROCESSES = 4
PER_PROCESS = 50  # 200 dispatches in all
WINDOW = 3600


class Shared(SharedStore):
    def __init__(self, where: SharedBackend, store: StateStore | None, audit: AuditStore | None) -> None:
        super().__init__(where, store, audit)
        now = time.time()
        # Every process starts its clock at the next hour boundary: no run straddles a window.
        self.offset = (int(now) // WINDOW + 1) * WINDOW - now

    def race(self, pool: SpawnPool, **arg: Any) -> Counter[str]:
        arg["per_process"] = PER_PROCESS
        total: Counter[str] = Counter()
        for result in pool.race(workers.run, self.where, self.offset, arg, lead=0.5, timeout=120):
            total.update(result)
        return total

    async def count(self, key: str) -> int:
        return int(await self.store.get(key) or 0)


pool = pool_fixture(workers, processes=PROCESSES)
shared = shared_fixture(Shared, state=True)


async def test_stored_quota_admits_exactly_max_actions(pool: SpawnPool, shared: Shared) -> None:
    # The policy is stored by this process and found by the others through the store.
    async with AsyncGateway(state=shared.store, background=False) as admin:
        await admin.create_quota_policy({"namespace": "mp", "tenant": "t", "max_actions": 37,
                                         "window": "hourly", "overage_behavior": "block"})
    outcomes = shared.race(pool)
    assert outcomes == {"executed": 37, "quota_exceeded": 4 * PER_PROCESS - 37}
    assert await shared.count(workers.EXECUTED_KEY) == 37


async def test_concurrent_creates_leave_one_policy(pool: SpawnPool, shared: Shared) -> None:
    created = pool.race(workers.create, shared.where, "race", lead=0.5, timeout=60)
    assert sum(created) == 1
    async with AsyncGateway(state=shared.store, background=False) as admin:
        listed = await admin.list_quota_policies(tenant="race")
        assert len(listed) == 1
        assert await shared.store.get("_system:_quotas:quota:idx:mp:race") == listed[0].id


async def test_notification_is_sent_once_across_processes(pool: SpawnPool, shared: Shared) -> None:
    policy = {"namespace": "mp", "tenant": "t", "max_actions": 10, "window": "hourly",
              "overage_behavior": {"notify": {"target": "ops"}}}
    outcomes = shared.race(pool, quota_policies=[policy])
    assert outcomes == {"executed": 4 * PER_PROCESS}
    assert await shared.count(workers.EXECUTED_KEY) == 4 * PER_PROCESS
    assert await shared.count(workers.NOTIFIED_KEY) == 1


async def test_budget_spend_is_exact_and_alerts_once(pool: SpawnPool, shared: Shared) -> None:
    budget = {"namespace": "mp", "tenant": "t", "limit": 0.5, "window": "hourly", "alert_provider": "ops"}
    outcomes = shared.race(pool, provider_costs={"email": 0.003}, budgets=[budget])
    assert outcomes == {"executed": 4 * PER_PROCESS}
    index = QuotaWindow.HOURLY.bucket(datetime.fromtimestamp(time.time() + shared.offset, UTC)).index
    spent = await shared.store.get(spend_key("mp", "t", QuotaWindow.HOURLY, index))
    assert spent == str(4 * PER_PROCESS * 3000)  # 200 x 0.003, in micro-units: no lost update
    assert await shared.count(workers.NOTIFIED_KEY) == 1  # the alert of the one crossing increment
