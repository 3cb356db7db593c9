"""SQLite audit store: buffering, flushing, rejections, schema and fork safety (B6)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from acteon._exceptions import AuditError, AuditStorageError, ConfigurationError
from acteon.audit import open_audit_store
from acteon.audit._model import AuditQuery, AuditRecord
from acteon.audit.sqlite import SQLiteAuditStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)
SLOW = 3600.0  # a flush interval no test waits for


def rec(id: str, at: datetime = T0, **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "action_id": f"act-{id}", "namespace": "ns", "tenant": "t", "provider": "email",
        "action_type": "send", "verdict": "allow", "outcome": "executed", "completed_at": at,
    }
    values.update(fields)
    return AuditRecord(id=id, dispatched_at=at, **values)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


def count_rows(path: Path) -> int:
    """What another process would see."""
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM acteon_audit").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await anyio.sleep(0.01)
    return bool(predicate())


# --------------------------------------------------------------------------- buffering


async def test_record_is_buffered_until_flush(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        for i in range(3):
            await store.record(rec(f"r{i}"))
        assert store.pending == 3
        assert count_rows(db) == 0
        await store.flush()
        assert store.pending == 0
        assert count_rows(db) == 3


async def test_flush_interval_writes_in_the_background(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=0.05) as store:
        await store.record(rec("r1"))
        assert await wait_for(lambda: count_rows(db) == 1)


async def test_a_full_batch_is_written_without_waiting(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW, batch_size=10) as store:
        for i in range(10):
            await store.record(rec(f"r{i}"))
        assert await wait_for(lambda: count_rows(db) == 10)


async def test_back_pressure_when_too_much_is_pending(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW, batch_size=100, max_pending=5) as store:
        for i in range(5):
            await store.record(rec(f"r{i}"))
        assert store.pending == 0
        assert count_rows(db) == 5


async def test_aclose_writes_everything(db: Path) -> None:
    store = SQLiteAuditStore(db, flush_interval=SLOW, batch_size=10_000)
    await store.start()
    for i in range(500):
        await store.record(rec(f"r{i:03d}", T0 + timedelta(milliseconds=i)))
    await store.aclose()
    await store.aclose()
    assert count_rows(db) == 500
    async with SQLiteAuditStore(db) as reopened:
        page = await reopened.query(AuditQuery(limit=1))
        assert page.total == 500 and page.records[0].id == "r499"


async def test_record_does_not_wait_for_a_locked_database(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=0.01) as store:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        start = time.monotonic()
        for i in range(200):
            await store.record(rec(f"r{i}"))
        assert time.monotonic() - start < 0.5
        await anyio.sleep(0.1)
        holder.execute("COMMIT")
        holder.close()
        await store.flush()
        assert count_rows(db) == 200


async def test_flush_reports_a_database_that_stays_locked(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW, busy_timeout=0.05, retry_deadline=0.2) as store:
        await store.record(rec("r1"))
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(AuditStorageError, match="locked"):
                await store.flush()
            assert store.pending == 1  # kept for the next attempt
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await store.flush()
        assert count_rows(db) == 1


async def test_sequenced_records_are_written_at_once_in_order(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("plain"))
        await store.record(rec("chained", sequence_number=0))
        assert store.pending == 0
        assert count_rows(db) == 2
        with sqlite3.connect(db) as conn:
            order = [r[0] for r in conn.execute("SELECT id FROM acteon_audit ORDER BY rowid")]
        assert order == ["plain", "chained"]


# --------------------------------------------------------------------------- rejections


async def test_a_duplicate_in_a_batch_keeps_the_others(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("r1", outcome="executed"))
        await store.flush()
        for r in (rec("a"), rec("r1", outcome="failed"), rec("b")):
            await store.record(r)
        with caplog.at_level(logging.ERROR, logger="acteon.audit"):
            with pytest.raises(AuditStorageError, match="unique constraint violation: duplicate id r1"):
                await store.flush()
        assert "duplicate id r1" in caplog.text
        await store.flush()  # reported once
        assert sorted(r.id for r in (await store.query(AuditQuery())).records) == ["a", "b", "r1"]
        first = await store.get_by_id("r1")
        assert first is not None and first.outcome == "executed"


async def test_several_rejections_are_summarised(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("x"))
        await store.record(rec("x"))
        await store.record(rec("x"))
        with pytest.raises(AuditStorageError, match="2 buffered audit records were rejected; first: unique"):
            await store.flush()


async def test_rejections_surface_on_aclose(db: Path) -> None:
    store = SQLiteAuditStore(db, flush_interval=SLOW)
    await store.record(rec("x"))
    await store.record(rec("x"))
    with pytest.raises(AuditStorageError, match="unique"):
        await store.aclose()
    assert count_rows(db) == 1


async def test_unserializable_payload_is_rejected_alone(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("bad", action_payload={"set": {1, 2}}))
        await store.record(rec("good"))
        with pytest.raises(AuditError, match="bad"):
            await store.flush()
        assert await store.get_by_id("good") is not None
        assert await store.get_by_id("bad") is None


async def test_self_referencing_payload_is_rejected_alone(db: Path) -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("loop", action_payload=looped))
        await store.record(rec("fine"))
        with pytest.raises(AuditError, match="loop"):
            await store.flush()
        assert await store.get_by_id("fine") is not None
        assert await store.get_by_id("loop") is None
        with pytest.raises(AuditError, match="loop2"):
            await store.record(rec("loop2", action_payload=looped, sequence_number=1))


async def test_a_value_sqlite_cannot_store_is_rejected_alone(db: Path) -> None:
    async with SQLiteAuditStore(db, flush_interval=SLOW) as store:
        await store.record(rec("huge", duration_ms=2**70))
        await store.record(rec("fine"))
        with pytest.raises(AuditError, match="huge"):
            await store.flush()
        assert await store.get_by_id("fine") is not None
        with pytest.raises(AuditError, match="huge-seq"):
            await store.record(rec("huge-seq", duration_ms=2**70, sequence_number=1))
        await store.record(rec("ok-seq", sequence_number=1))


async def test_unique_violation_on_a_sequenced_record_raises_from_record(db: Path) -> None:
    async with SQLiteAuditStore(db) as store:
        await store.record(rec("s1", sequence_number=4))
        with pytest.raises(AuditStorageError, match="unique constraint violation: duplicate sequence_number"):
            await store.record(rec("s2", sequence_number=4))


# --------------------------------------------------------------------------- storage form


async def test_schema_and_stored_form(db: Path) -> None:
    at = T0 + timedelta(microseconds=1500)
    async with SQLiteAuditStore(db, synchronous="FULL") as store:
        await store.record(
            rec("r1", at, action_payload={"b": 1, "a": "ü"}, expires_at=at + timedelta(microseconds=1))
        )
        await store.flush()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in conn.execute("PRAGMA table_info(acteon_audit)")]
        indexes = {r[1]: r[2] for r in conn.execute("PRAGMA index_list(acteon_audit)")}
        row = conn.execute(
            "SELECT dispatched_at, dispatched_at_ms, dispatched_at_us, action_payload, expires_at_ms,"
            " attachment_metadata, metadata FROM acteon_audit"
        ).fetchone()
    for name in ("id", "action_payload", "sequence_number", "kid", "canonical_hash", "dispatched_at_ms",
                 "expires_at_ms"):
        assert name in cols
    assert indexes["idx_acteon_audit_hash_chain"] == 1  # unique
    for name in ("ns_tenant_time", "time", "outcome", "provider", "action_id", "expires", "chain_id",
                 "signer_id", "coverage"):
        assert f"idx_acteon_audit_{name}" in indexes
    ms = int(T0.timestamp() * 1000) + 1
    assert row == ("2026-01-15T10:00:00.001500Z", ms, ms * 1000 + 500, '{"b":1,"a":"ü"}', ms + 1, "[]", "{}")


async def test_open_audit_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_audit_store("sqlite:///audit.db", batch_size=8)
    assert isinstance(store, SQLiteAuditStore) and store.batch_size == 8
    async with store:
        await store.record(rec("r1"))
    assert count_rows(tmp_path / "audit.db") == 1
    with pytest.raises(ConfigurationError):
        SQLiteAuditStore(tmp_path / "x.db", prefix="no-dash")


async def test_two_stores_on_one_file(db: Path) -> None:
    async with SQLiteAuditStore(db) as a, SQLiteAuditStore(db) as b:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(a.record, rec(f"a{i}"))
                tg.start_soon(b.record, rec(f"b{i}"))
        await a.flush()
        assert (await b.query(AuditQuery(limit=1))).total == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_write_the_parents_buffer(db: Path) -> None:
    store = SQLiteAuditStore(db, flush_interval=SLOW)

    async def buffer_some() -> None:
        await store.start()
        for i in range(5):
            await store.record(rec(f"parent-{i}"))

    anyio.run(buffer_some)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            async def child() -> None:
                assert store.pending == 0
                await store.record(rec("child"))
                await store.aclose()

            anyio.run(child)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    async def finish() -> None:
        assert store.pending == 5
        await store.aclose()

    anyio.run(finish)
    with sqlite3.connect(db) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM acteon_audit"))
    assert ids == ["child"] + [f"parent-{i}" for i in range(5)]
