"""Approvals across 4 spawned OS processes sharing one SQLite file or one Redis prefix.

- every process loops ``tick()`` past the expiry of 20 approvals: each expiry
  fires exactly once (one ``approval_expired`` audit record, one ``expired``
  status, the per-process counts add up to 20);
- every process approves the same 10 approvals at the same instant: each
  original action executes exactly once, every other attempt is refused with
  ``ApprovalAlreadyDecided``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from acteon import Action
from acteon.audit import AuditQuery
from acteon.outcomes import PendingApproval
from acteon.testing import FakeClock
from tests._multiprocess import SharedStore, SpawnPool, pool_fixture, shared_fixture
from tests.workflows import _mp_approval_workers as workers

pytestmark = pytest.mark.anyio

PROCESSES = 4
T0 = 1_800_000_000.0


class Shared(SharedStore):
    def race(self, pool: SpawnPool, scenario: str, clock_at: float, arg: dict[str, Any]) -> list[Any]:
        return pool.race(workers.run, self.where, scenario, clock_at, arg, lead=0.3, timeout=60)

    async def request(self, count: int) -> tuple[list[PendingApproval], Any, Any]:
        """Create ``count`` approvals at T0 from this (test) process."""
        gw, state, audit = workers.build(self.where, FakeClock(T0))
        pending: list[PendingApproval] = []
        async with state, audit, gw:
            for i in range(count):
                outcome = await gw.dispatch(Action(namespace="mp", tenant="t", provider="bank",
                                                   action_type="transfer", payload={"i": i}))
                assert isinstance(outcome, PendingApproval)
                pending.append(outcome)
        return pending, state, audit


pool = pool_fixture(workers, processes=PROCESSES)
shared = shared_fixture(Shared)


async def test_each_expiry_fires_exactly_once(pool: SpawnPool, shared: Shared) -> None:
    pending, _, _ = await shared.request(20)
    results = shared.race(pool, "expire", T0 + 120, {"seconds": 1.5})
    assert all(r["ticks"] > 3 for r in results), results  # the processes really overlapped
    assert sum(r["expired"] for r in results) == 20, results

    gw, state, audit = workers.build(shared.where, FakeClock(T0 + 130))
    async with state, audit, gw:
        statuses = Counter(a.status for a in await gw.list_approvals("mp", "t"))
        assert statuses == {"expired": 20}
        page = await audit.query(AuditQuery(namespace="mp", tenant="t", outcome="approval_expired", limit=100))
        assert len(page.records) == 20
        assert len({r.outcome_details["approval_id"] for r in page.records}) == 20
        assert {p.approval_id for p in pending} == {r.outcome_details["approval_id"] for r in page.records}
        assert (await gw.tick())["approval_expiry"] == 0


async def test_concurrent_approvals_execute_each_action_once(pool: SpawnPool, shared: Shared) -> None:
    pending, _, _ = await shared.request(10)
    links = []
    for p in pending:
        query = parse_qs(urlparse(p.approve_url).query)
        links.append({"id": p.approval_id, "sig": query["sig"][0], "expires_at": query["expires_at"][0],
                      "kid": query["kid"][0]})
    results = shared.race(pool, "approve", T0 + 10, {"links": links})
    total: Counter[str] = Counter()
    for r in results:
        total.update(r)
    assert total == {"executed": 10, "already_decided": 30, "other": 0}, results

    gw, state, audit = workers.build(shared.where, FakeClock(T0 + 20))
    async with state, audit, gw:
        assert int(await state.get(workers.EXECUTIONS_KEY) or 0) == 10
        assert Counter(a.status for a in await gw.list_approvals("mp", "t")) == {"approved": 10}
        page = await audit.query(AuditQuery(namespace="mp", tenant="t", outcome="executed", limit=100))
        assert len(page.records) == 10
