"""Spawned-process half of the chain-contention test (pytest-free: a spawn child imports it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio

from acteon.audit import AuditRecord, HashChainAuditStore
from acteon.audit.sqlite import SQLiteAuditStore


def append(path: str, worker: int, start_at: float, count: int) -> int:
    async def main() -> int:
        async with SQLiteAuditStore(path) as store:
            chain = HashChainAuditStore(store)
            time.sleep(max(0.0, start_at - time.time()))
            base = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
            for i in range(count):
                at = base + timedelta(milliseconds=worker * 1000 + i)
                await chain.record(AuditRecord(
                    id=f"w{worker}-{i:02d}", action_id=f"a{worker}-{i}", namespace="ns", tenant="shared",
                    provider="email", action_type="send", verdict="allow", outcome="executed",
                    dispatched_at=at, completed_at=at, action_payload={"w": worker, "i": i},
                ))
        return count

    return anyio.run(main)
