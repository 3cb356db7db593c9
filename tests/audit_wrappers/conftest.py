"""Inner stores for the audit decorator tests: memory and SQLite, on a fake clock."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from acteon.audit import AuditRecord, AuditStore, MemoryAuditStore
from acteon.audit.sqlite import SQLiteAuditStore
from acteon.testing import FakeClock

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def inner(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[AuditStore]:
    store: AuditStore
    if request.param == "memory":
        store = MemoryAuditStore(clock=clock)
    else:
        store = SQLiteAuditStore(tmp_path / "audit.db", clock=clock)
    async with store:
        yield store


def rec(rid: str, *, action_id: str | None = None, tenant: str = "t1", at: datetime = NOW, **kw: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "id": rid, "action_id": action_id or f"a-{rid}", "namespace": "ns", "tenant": tenant,
        "provider": "email", "action_type": "send_email", "verdict": "allow", "outcome": "executed",
        "dispatched_at": at, "completed_at": at,
    }
    return AuditRecord(**{**fields, **kw})


def tamper(store: AuditStore, rid: str, **changes: Any) -> None:
    """Change a stored record behind the decorators' back."""
    if isinstance(store, MemoryAuditStore):
        for name, value in changes.items():
            setattr(store._records[rid], name, value)
        return
    assert isinstance(store, SQLiteAuditStore)
    with sqlite3.connect(store.path) as conn:
        for name, value in changes.items():
            if name in ("action_payload", "metadata"):
                value = None if value is None else json.dumps(value)
            conn.execute(f"UPDATE acteon_audit SET {name} = ? WHERE id = ?", (value, rid))


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
