"""SQLite state store: what the shared contract cannot see (A10).

URLs, schema, options, the locked-database fallback and retry deadline, fork
safety, odd keys (checked against the memory store), the counter paths with and
without ``RETURNING``, and batch sweeping.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from acteon._exceptions import (
    ConfigurationError,
    StateBackendError,
    StateConnectionError,
    StateSerializationError,
)
from acteon.state import open_state_store
from acteon.state._base import StateStore
from acteon.state.memory import MemoryStateStore
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing._clock import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


# --------------------------------------------------------------------------- opening


async def test_open_state_store_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_state_store("sqlite:///rel/state.db")
    assert isinstance(store, SQLiteStateStore)
    assert store.path == "rel/state.db"
    (tmp_path / "rel").mkdir()
    async with store:
        await store.set("ns:t:state:a", "1")
    assert (tmp_path / "rel" / "state.db").exists()


async def test_open_state_store_absolute_url(tmp_path: Path) -> None:
    target = tmp_path / "abs.db"
    store = open_state_store(f"sqlite:///{target}", prefix="x_")
    assert isinstance(store, SQLiteStateStore)
    assert store.path == str(target)
    async with store:
        await store.set("ns:t:state:a", "1")
    with sqlite3.connect(target) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"x_state", "x_locks", "x_timeout_index", "x_chain_ready_index"} <= tables


async def test_missing_directory_is_a_connection_error(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "nope" / "state.db")
    with pytest.raises(StateConnectionError, match="unable to open"):
        await store.get("ns:t:state:a")


def test_old_sqlite_is_refused(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 22, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.22.0")
    with pytest.raises(ConfigurationError, match=r"SQLite >= 3\.24.*3\.22\.0"):
        SQLiteStateStore(db)


@pytest.mark.parametrize("prefix", ["bad-prefix", "a;drop", "spa ce", "ü_"])
def test_prefix_must_be_an_identifier(prefix: str, db: Path) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        SQLiteStateStore(db, prefix=prefix)


def test_unknown_synchronous_mode(db: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteStateStore(db, synchronous="sometimes")


async def test_schema_pragmas_and_options(db: Path) -> None:
    async with SQLiteStateStore(db, synchronous="FULL") as store:
        await store.set("ns:t:state:a", "1")
        cur = store._pool.inline()
        assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert cur.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # the loop never waits
        worker = await anyio.to_thread.run_sync(store._pool.worker)
        assert worker.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        indexes = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"acteon_state_scan_idx", "acteon_state_expires_idx", "acteon_timeout_index_ms_idx",
                "acteon_chain_ready_ms_idx"} <= indexes
        row = cur.execute("SELECT ns, tenant, kind, ident, version FROM acteon_state").fetchone()
        assert row == ("ns", "t", "state", "a", 1)


async def test_aclose_is_idempotent_and_the_store_reopens(db: Path) -> None:
    store = SQLiteStateStore(db)
    await store.start()
    await store.set("ns:t:state:a", "1")
    await store.aclose()
    await store.aclose()
    assert await store.get("ns:t:state:a") == "1"
    await store.aclose()


async def test_lock_follows_the_gateway_clock(db: Path, clock: FakeClock) -> None:
    async with SQLiteStateStore(db) as store:
        lock = store.distributed_lock()
        store.use_clock(clock)
        assert lock.clock is clock
        guard = await lock.try_acquire("l", 10)
        assert guard is not None
        clock.advance(11)
        assert await guard.is_held() is False
        assert await lock.try_acquire("l", 10) is not None


# --------------------------------------------------------------------------- contention


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_locked_database_moves_the_operation_off_the_loop(db: Path) -> None:
    """Inline operations meet the write lock at once and finish in a worker thread."""
    async with SQLiteStateStore(db) as store:
        await store.set("ns:t:state:seed", "x")
        holder = _hold_write_lock(db)
        ticks = 0
        result: list[bool] = []

        async def ticker() -> None:
            nonlocal ticks
            while not result:
                ticks += 1
                await anyio.sleep(0.01)

        async def write() -> None:
            result.append(await store.check_and_set("ns:t:dedup:contended", "1"))

        async def release_later() -> None:
            await anyio.sleep(0.3)
            holder.execute("COMMIT")

        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(write)
            tg.start_soon(release_later)
        holder.close()
        assert result == [True]
        assert time.monotonic() - start >= 0.3
        assert ticks >= 10  # the event loop kept running while the write waited


async def test_reads_do_not_wait_for_a_writer(db: Path) -> None:
    async with SQLiteStateStore(db) as store:
        await store.set("ns:t:state:a", "old")
        holder = _hold_write_lock(db)
        holder.execute("UPDATE acteon_state SET value = 'new'")
        try:
            start = time.monotonic()
            assert await store.get("ns:t:state:a") == "old"  # WAL snapshot
            assert time.monotonic() - start < 0.5
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert await store.get("ns:t:state:a") == "new"


@pytest.mark.parametrize("offload", [False, True])
async def test_gives_up_after_the_retry_deadline(db: Path, offload: bool) -> None:
    async with SQLiteStateStore(db, busy_timeout=0.05, retry_deadline=0.3, offload=offload) as store:
        holder = _hold_write_lock(db)
        try:
            start = time.monotonic()
            with pytest.raises(StateBackendError, match="database is locked"):
                await store.increment("ns:t:counter:c", 1)
            assert 0.3 <= time.monotonic() - start < 3
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.increment("ns:t:counter:c", 1) == 1


async def test_two_stores_on_one_file_see_each_other(db: Path) -> None:
    async with SQLiteStateStore(db) as a, SQLiteStateStore(db, offload=True) as b:
        assert await a.check_and_set("ns:t:dedup:x", "a") is True
        assert await b.check_and_set("ns:t:dedup:x", "b") is False
        guard = await b.distributed_lock().try_acquire("shared", 30)
        assert guard is not None
        assert await a.distributed_lock().try_acquire("shared", 30) is None
        await guard.release()
        assert await a.distributed_lock().try_acquire("shared", 30) is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(db: Path) -> None:
    store = SQLiteStateStore(db)

    async def parent_setup() -> None:
        await store.set("ns:t:state:parent", "p")

    anyio.run(parent_setup)
    parent_cursor = store._pool.inline()

    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            async def child() -> None:
                assert store._pool.inline() is not parent_cursor
                assert await store.get("ns:t:state:parent") == "p"
                assert await store.check_and_set("ns:t:state:child", "c") is True
                assert await store.increment("ns:t:counter:c", 5) == 5

            anyio.run(child)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    async def parent_check() -> None:
        assert store._pool.inline() is parent_cursor  # the parent's connection is untouched
        assert await store.get("ns:t:state:child") == "c"
        assert await store.increment("ns:t:counter:c", 1) == 6
        await store.aclose()

    anyio.run(parent_check)


# --------------------------------------------------------------------------- parity with memory


async def _apply(store: StateStore) -> list[object]:
    """A mix of odd keys and kinds; both stores must give the same answers."""
    out: list[object] = []
    odd = [
        "single", "a:b", "a:b:c", "a:b:c:", "ns:t:sync_version:templates:v", "ns:t:state:x:y:z", "::state:e",
    ]
    for i, key in enumerate(odd):
        await store.set(key, f"v{i}")
        out.append(await store.get_versioned(key))
    out.append(sorted(await store.scan_keys_by_kind("state")))
    out.append(sorted(await store.scan_keys_by_kind("sync_version")))
    out.append(sorted(await store.scan_keys_by_kind("")))
    out.append(sorted(await store.scan_keys_by_kind("c")))
    out.append(sorted(await store.scan_keys("ns", "t", "sync_version:templates")))
    out.append(sorted(await store.scan_keys("ns", "t", "sync_version", "templates:")))
    out.append(sorted(await store.scan_keys("ns", "t", "state", "x:")))
    out.append(sorted(await store.scan_keys("a", "b", "c")))
    out.append(sorted(await store.scan_keys("", "", "state")))
    out.append(sorted(await store.scan_keys("a:b", "c", "")))
    for value in ("007", "+5", "-0", " 5", "5 ", "1_000", "1e3", "0x10", "9223372036854775807", "", "١٢"):
        key = f"ns:t:counter:{value!r}"
        await store.set(key, value)
        try:
            out.append(await store.increment(key, 1))
        except StateSerializationError as exc:
            out.append(str(exc))
        out.append(await store.get(key))
    out.append(await store.increment("ns:t:counter:low", -(2**63)))
    try:
        out.append(await store.increment("ns:t:counter:low", -1))
    except StateSerializationError as exc:
        out.append(str(exc))
    return out


@pytest.mark.parametrize("returning", [True, False])
async def test_same_answers_as_the_memory_store(db: Path, clock: FakeClock, returning: bool) -> None:
    expected = await _apply(MemoryStateStore(clock=clock))
    async with SQLiteStateStore(db, clock=clock) as store:
        store._use_returning = returning
        assert await _apply(store) == expected


@pytest.mark.parametrize("returning", [True, False])
async def test_counter_paths(db: Path, clock: FakeClock, returning: bool) -> None:
    async with SQLiteStateStore(db, clock=clock) as store:
        store._use_returning = returning
        assert await store.increment("ns:t:counter:a", 2, ttl=10) == 2
        assert await store.get_versioned("ns:t:counter:a") == ("2", 1)
        assert await store.increment("ns:t:counter:a", 3) == 5
        assert await store.get_versioned("ns:t:counter:a") == ("5", 2)
        clock.advance(11)
        assert await store.increment("ns:t:counter:a", 1) == 1
        assert await store.get_versioned("ns:t:counter:a") == ("1", 1)
        assert await store.increment_window("ns:t:rate_limit:w", 1, int(clock.time() * 1000) + 5000) == 1
        assert await store.increment_window("ns:t:rate_limit:w", 1, int(clock.time() * 1000) + 99999) == 2
        clock.advance(5)
        assert await store.get("ns:t:rate_limit:w") is None


async def test_sweep_works_in_batches(db: Path, clock: FakeClock) -> None:
    async with SQLiteStateStore(db, clock=clock) as store:
        for i in range(2500):
            await store.check_and_set(f"ns:t:dedup:{i}", "1", ttl=1)
        lock = store.distributed_lock()
        for i in range(1200):
            assert await lock.try_acquire(f"l{i}", 1) is not None
        clock.advance(2)
        assert await store.sweep_expired() == 2500
        assert await lock.sweep_expired() == 1200
        assert await store.sweep_expired() == 0


async def test_failed_claim_leaves_no_lock_behind(db: Path) -> None:
    async with SQLiteStateStore(db) as store:
        await store.set("ns:t:rate_limit:bad", "abc")
        with pytest.raises(StateSerializationError):
            await store.claim_and_increment_window("dispatch:x", 30, "ns:t:rate_limit:bad", 1, 2**50)
        guard = await store.distributed_lock().try_acquire("dispatch:x", 30)
        assert guard is not None
        await guard.release()
