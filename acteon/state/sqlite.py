"""SQLite state store and distributed lock, safe across threads and OS processes on one host.

Every operation is one SQL statement in autocommit mode or one ``BEGIN IMMEDIATE``
transaction, and SQLite admits one writer per file at a time, so
``check_and_set``, ``increment``, compare-and-swap and lock acquisition are
linearizable across every process that opens the file (state-audit.md A10).

Where the work runs: by default (``offload=False``) an operation runs right on
the event-loop thread with a busy timeout of zero. An uncontended WAL write
costs 10-50 µs there, while a hop to a worker thread alone costs about
100 µs. When another connection holds the write lock, SQLite answers
``database is locked`` at once without writing anything, and the operation is
re-run from the start in a worker thread. That thread waits for the lock in
SQLite's busy handler and retries with jittered backoff until
``retry_deadline``. ``offload=True`` sends every operation to a worker thread.
It keeps the loop free of file I/O at the price of the hop. See
``docs/backends-sqlite.md`` for the measurements.

Requires SQLite >= 3.24. The WAL file needs shared memory next to the database,
so never put the file on NFS, SMB or another network filesystem.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from acteon._clock import Clock
from acteon._exceptions import (
    LockExpired,
    StateBackendError,
    StateConnectionError,
    StateSerializationError,
)
from acteon.state._base import CasResult, DistributedLock, LockGuard, StateStore
from acteon.state._keys import KeyLike, canonical
from acteon.state._sqlite_conn import (
    HAS_RETURNING,
    ConnectionPool,
    check_prefix,
    is_busy,
    rollback,
    run_with_retry,
)

__all__ = ["SQLiteDistributedLock", "SQLiteStateStore"]

T = TypeVar("T")

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_CAS_OK = CasResult(True)
_NO_PARTS: tuple[None, None, None, None] = (None, None, None, None)
_SWEEP_BATCH = 1000


def _parts(key: str) -> tuple[str, str, str, str] | tuple[None, None, None, None]:
    """``(ns, tenant, kind, ident)`` of a canonical key, split like every consumer does.

    A string with fewer than four segments gets NULL columns, so it is never
    returned by a scan, just as the memory store never returns it.
    """
    parts = key.split(":", 3)
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return _NO_PARTS


def _parse_counter(value: str) -> int:
    text = value.strip()
    try:
        if text != value or not text or "_" in text:
            raise ValueError(value)
        return int(text, 10)
    except ValueError:
        raise StateSerializationError(f"counter value is not an integer: {value!r}") from None


def _checked(current: int, delta: int) -> int:
    new = current + delta
    if not _I64_MIN <= new <= _I64_MAX:
        raise StateSerializationError(f"counter overflow: {current} + {delta}")
    return new


class _SQL:
    """Every statement, formatted once per store with its table prefix."""

    def __init__(self, p: str) -> None:
        st, lk = f"{p}state", f"{p}locks"
        ti, cr = f"{p}timeout_index", f"{p}chain_ready_index"
        live = "(expires_at IS NULL OR expires_at > ?)"
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {st} (key TEXT PRIMARY KEY, ns TEXT, tenant TEXT, kind TEXT,"
            " ident TEXT, value TEXT NOT NULL, version INTEGER NOT NULL, expires_at INTEGER)",
            # One index serves both scans (kind = ? / kind, ns, tenant = ? + ident range):
            # a second one would cost another page write on every new key.
            f"CREATE INDEX IF NOT EXISTS {p}state_scan_idx ON {st} (kind, ns, tenant, ident)",
            f"CREATE INDEX IF NOT EXISTS {p}state_expires_idx ON {st} (expires_at)"
            " WHERE expires_at IS NOT NULL",
            f"CREATE TABLE IF NOT EXISTS {lk} (name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " expires_at INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {ti} (key TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {p}timeout_index_ms_idx ON {ti} (expires_at_ms, key)",
            f"CREATE TABLE IF NOT EXISTS {cr} (key TEXT PRIMARY KEY, ready_at_ms INTEGER NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {p}chain_ready_ms_idx ON {cr} (ready_at_ms, key)",
        )
        cols = "(key, ns, tenant, kind, ident, value, version, expires_at)"
        # params: key, ns, tenant, kind, ident, value, expires_at, now
        self.check_and_set = (
            f"INSERT INTO {st} {cols} VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET"
            " value = excluded.value, version = 1, expires_at = excluded.expires_at"
            f" WHERE {st}.expires_at IS NOT NULL AND {st}.expires_at <= ?"
        )
        # params: key, ns, tenant, kind, ident, value, expires_at, now
        self.set = (
            f"INSERT INTO {st} {cols} VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET"
            " value = excluded.value, expires_at = excluded.expires_at,"
            f" version = CASE WHEN {st}.expires_at IS NULL OR {st}.expires_at > ?"
            f" THEN {st}.version + 1 ELSE 1 END"
        )
        self.get = f"SELECT value FROM {st} WHERE key = ? AND {live}"
        self.get_versioned = f"SELECT value, version FROM {st} WHERE key = ? AND {live}"
        self.get_raw = f"SELECT value, expires_at FROM {st} WHERE key = ?"
        self.delete = f"DELETE FROM {st} WHERE key = ? AND {live}"
        # Counter fast path: one statement when the live value is a canonical i64 and
        # the sum stays an i64 (SQLite turns an overflowing sum into REAL); anything
        # else falls through to the transaction, which raises the precise error.
        canon = (
            "value = CAST(CAST(value AS INTEGER) AS TEXT)"
            " AND typeof(CAST(value AS INTEGER) + ?) = 'integer'"
        )
        # Two forms each: one that sets the expiry and one that leaves the column out of
        # the SET list (so the expiry index is not rewritten on every hit of a window).
        add = "value = CAST(CAST(value AS INTEGER) + ? AS TEXT), version = version + 1"
        # params: delta, [expires_at,] key, now, delta
        self.incr_fast_keep = f"UPDATE {st} SET {add} WHERE key = ? AND {live} AND {canon} RETURNING value"
        self.incr_fast_expire = (
            f"UPDATE {st} SET {add}, expires_at = ? WHERE key = ? AND {live} AND {canon} RETURNING value"
        )
        # params: value, [expires_at,] key
        self.incr_update_keep = f"UPDATE {st} SET value = ?, version = version + 1 WHERE key = ?"
        self.incr_update_expire = (
            f"UPDATE {st} SET value = ?, version = version + 1, expires_at = ? WHERE key = ?"
        )
        self.replace = f"INSERT OR REPLACE INTO {st} {cols} VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
        # params: value, [expires_at,] key, expected_version, now
        self.cas_keep = (
            f"UPDATE {st} SET value = ?, version = version + 1 WHERE key = ? AND version = ? AND {live}"
        )
        self.cas_expire = (
            f"UPDATE {st} SET value = ?, version = version + 1, expires_at = ?"
            f" WHERE key = ? AND version = ? AND {live}"
        )
        self.scan = f"SELECT key, value FROM {st} WHERE kind = ? AND ns = ? AND tenant = ? AND {live}"
        self.scan_prefix = (
            f"SELECT key, value FROM {st} WHERE kind = ? AND ns = ? AND tenant = ?"
            f" AND ident >= ? AND substr(ident, 1, length(?)) = ? AND {live}"
        )
        self.scan_key_prefix = (
            f"SELECT key, value FROM {st} WHERE key >= ? AND substr(key, 1, length(?)) = ? AND {live}"
        )
        self.scan_kind = f"SELECT key, value FROM {st} WHERE kind = ? AND {live}"
        self.sweep_state = (
            f"DELETE FROM {st} WHERE rowid IN (SELECT rowid FROM {st}"
            f" WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT {_SWEEP_BATCH})"
        )
        self.index_timeout = (
            f"INSERT INTO {ti} (key, expires_at_ms) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms"
        )
        self.remove_timeout = f"DELETE FROM {ti} WHERE key = ?"
        self.expired_timeouts = f"SELECT key FROM {ti} WHERE expires_at_ms <= ? ORDER BY expires_at_ms, key"
        self.index_chain = (
            f"INSERT INTO {cr} (key, ready_at_ms) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET ready_at_ms = excluded.ready_at_ms"
        )
        self.remove_chain = f"DELETE FROM {cr} WHERE key = ?"
        self.ready_chains = f"SELECT key FROM {cr} WHERE ready_at_ms <= ? ORDER BY ready_at_ms, key"
        # Locks. params: name, owner, expires_at, now
        self.lock_acquire = (
            f"INSERT INTO {lk} (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            f" owner = excluded.owner, expires_at = excluded.expires_at WHERE {lk}.expires_at <= ?"
        )
        self.lock_extend = f"UPDATE {lk} SET expires_at = ? WHERE name = ? AND owner = ? AND expires_at > ?"
        self.lock_release = f"DELETE FROM {lk} WHERE name = ? AND owner = ?"
        self.lock_held = f"SELECT 1 FROM {lk} WHERE name = ? AND owner = ? AND expires_at > ?"
        self.sweep_locks = (
            f"DELETE FROM {lk} WHERE rowid IN (SELECT rowid FROM {lk}"
            f" WHERE expires_at <= ? LIMIT {_SWEEP_BATCH})"
        )


class SQLiteStateStore(StateStore):
    """A :class:`StateStore` in one SQLite file, shared by threads and processes of one host.

    Args:
        path: the database file (created with its tables when missing).
        clock: time source for TTLs (epoch ms); default the gateway's / system clock.
            Processes sharing the file must share the clock, which ``time.time()`` does.
        prefix: table-name prefix (``acteon_state``, ``acteon_locks``, ...).
        synchronous: ``NORMAL`` (survives process crashes; a power loss may drop the
            last commits) or ``FULL``.
        busy_timeout: seconds a worker thread waits for the write lock per attempt.
        offload: run every operation in a worker thread instead of on the event loop
            (see the module docstring).
        retry_deadline: seconds to keep retrying a locked database before raising
            :class:`~acteon.StateBackendError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        prefix: str = "acteon_",
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        offload: bool = False,
        retry_deadline: float = 30.0,
    ) -> None:
        self._init_clock(clock)
        self._sql = _SQL(check_prefix(prefix))
        self._pool = ConnectionPool(
            path, synchronous=synchronous, busy_timeout=busy_timeout, init_schema=self._create_schema
        )
        self.path = self._pool.path
        self.prefix = prefix
        self.offload = offload
        self.retry_deadline = retry_deadline
        self._use_returning = HAS_RETURNING
        self._lock: SQLiteDistributedLock | None = None

    def __repr__(self) -> str:
        return f"SQLiteStateStore({self.path!r})"

    def _create_schema(self, cur: sqlite3.Cursor) -> None:
        for statement in self._sql.schema:
            cur.execute(statement)

    # ------------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(cursor, *args)`` inline, or in a worker thread when offloading or locked."""
        if not self.offload:
            try:
                return fn(self._pool.inline(), *args)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise self._error(exc) from exc
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return await anyio.to_thread.run_sync(self._in_worker, fn, args)

    def _in_worker(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            cur = self._pool.worker()
            return run_with_retry(lambda: fn(cur, *args), deadline=self.retry_deadline)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise StateBackendError(
                    f"database is locked: gave up after {self.retry_deadline:g} s on {self.path}"
                ) from exc
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> Exception:
        if "unable to open" in str(exc):
            return StateConnectionError(f"{exc}: {self.path}")
        return StateBackendError(str(exc))

    def _expiry(self, now: int, ttl: float | None) -> int | None:
        return None if ttl is None else now + int(ttl * 1000)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the file, switch it to WAL and create the tables (idempotent)."""
        await anyio.to_thread.run_sync(self._in_worker, lambda cur: None, ())

    async def aclose(self) -> None:
        """Close every connection of this process; the store reopens them if used again."""
        self._pool.close()

    def distributed_lock(self) -> SQLiteDistributedLock:
        if self._lock is None:
            self._lock = SQLiteDistributedLock(self)
        return self._lock

    def use_clock(self, clock: Clock) -> None:
        super().use_clock(clock)
        if self._lock is not None:
            self._lock.use_clock(clock)

    # ------------------------------------------------------------------ key/value

    def _check_and_set(self, cur: sqlite3.Cursor, k: str, value: str, ttl: float | None) -> bool:
        now = self._now_ms()
        ns, tenant, kind, ident = _parts(k)
        cur.execute(self._sql.check_and_set, (k, ns, tenant, kind, ident, value, self._expiry(now, ttl), now))
        return cur.rowcount == 1

    async def check_and_set(self, key: KeyLike, value: str, ttl: float | None = None) -> bool:
        return await self._run(self._check_and_set, canonical(key), value, ttl)

    def _get(self, cur: sqlite3.Cursor, k: str) -> str | None:
        row = cur.execute(self._sql.get, (k, self._now_ms())).fetchone()
        return None if row is None else str(row[0])

    async def get(self, key: KeyLike) -> str | None:
        return await self._run(self._get, canonical(key))

    def _get_versioned(self, cur: sqlite3.Cursor, k: str) -> tuple[str, int] | None:
        row = cur.execute(self._sql.get_versioned, (k, self._now_ms())).fetchone()
        return None if row is None else (row[0], row[1])

    async def get_versioned(self, key: KeyLike) -> tuple[str, int] | None:
        return await self._run(self._get_versioned, canonical(key))

    def _set(self, cur: sqlite3.Cursor, k: str, value: str, ttl: float | None) -> None:
        now = self._now_ms()
        ns, tenant, kind, ident = _parts(k)
        cur.execute(self._sql.set, (k, ns, tenant, kind, ident, value, self._expiry(now, ttl), now))

    async def set(self, key: KeyLike, value: str, ttl: float | None = None) -> None:
        await self._run(self._set, canonical(key), value, ttl)

    def _delete(self, cur: sqlite3.Cursor, k: str) -> bool:
        cur.execute(self._sql.delete, (k, self._now_ms()))
        return cur.rowcount > 0

    async def delete(self, key: KeyLike) -> bool:
        return await self._run(self._delete, canonical(key))

    def _add(
        self, cur: sqlite3.Cursor, k: str, delta: int, update_exp: int | None, create_exp: int | None
    ) -> int:
        """Add ``delta``; an update sets ``update_exp`` (None keeps), a creation ``create_exp``."""
        now = self._now_ms()
        sql = self._sql
        if self._use_returning:
            if update_exp is None:
                row = cur.execute(sql.incr_fast_keep, (delta, k, now, delta)).fetchone()
            else:
                row = cur.execute(sql.incr_fast_expire, (delta, update_exp, k, now, delta)).fetchone()
            if row is not None:
                return int(row[0])
        # Absent, expired, non-canonical or overflowing: read, check and write in
        # one IMMEDIATE transaction (arithmetic in Python: SQLite's CAST turns 'abc'
        # into 0 and an i64 overflow into REAL).
        cur.execute("BEGIN IMMEDIATE")
        try:
            new = self._add_in_txn(cur, k, delta, update_exp, create_exp, now)
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise
        return new

    def _add_in_txn(
        self,
        cur: sqlite3.Cursor,
        k: str,
        delta: int,
        update_exp: int | None,
        create_exp: int | None,
        now: int,
    ) -> int:
        sql = self._sql
        row = cur.execute(sql.get_raw, (k,)).fetchone()
        if row is not None and (row[1] is None or row[1] > now):
            new = _checked(_parse_counter(row[0]), delta)
            if update_exp is None:
                cur.execute(sql.incr_update_keep, (str(new), k))
            else:
                cur.execute(sql.incr_update_expire, (str(new), update_exp, k))
        else:
            new = _checked(0, delta)
            ns, tenant, kind, ident = _parts(k)
            cur.execute(sql.replace, (k, ns, tenant, kind, ident, str(new), create_exp))
        return new

    def _increment(self, cur: sqlite3.Cursor, k: str, delta: int, ttl: float | None) -> int:
        # With a TTL the expiry slides on every call; without one it is kept.
        exp = self._expiry(self._now_ms(), ttl)
        return self._add(cur, k, delta, exp, exp)

    async def increment(self, key: KeyLike, delta: int, ttl: float | None = None) -> int:
        return await self._run(self._increment, canonical(key), int(delta), ttl)

    def _increment_window(self, cur: sqlite3.Cursor, k: str, delta: int, expires_at_ms: int) -> int:
        return self._add(cur, k, delta, None, expires_at_ms)

    async def increment_window(self, key: KeyLike, delta: int, expires_at_ms: int) -> int:
        return await self._run(self._increment_window, canonical(key), int(delta), int(expires_at_ms))

    def _compare_and_swap(
        self, cur: sqlite3.Cursor, k: str, expected: int, new_value: str, ttl: float | None
    ) -> CasResult:
        now = self._now_ms()
        params: tuple[Any, ...]
        if ttl is None:  # keep the expiry
            sql, params = self._sql.cas_keep, (new_value, k, expected, now)
        else:
            sql, params = self._sql.cas_expire, (new_value, now + int(ttl * 1000), k, expected, now)
        cur.execute(sql, params)
        if cur.rowcount == 1:
            return _CAS_OK
        # Report the conflict from the same snapshot that refused the write.
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute(sql, params)
            if cur.rowcount == 1:
                result = _CAS_OK
            else:
                row = cur.execute(self._sql.get_versioned, (k, now)).fetchone()
                result = CasResult(False, None, 0) if row is None else CasResult(False, row[0], row[1])
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise
        return result

    async def compare_and_swap(
        self, key: KeyLike, expected_version: int, new_value: str, ttl: float | None = None
    ) -> CasResult:
        return await self._run(self._compare_and_swap, canonical(key), int(expected_version), new_value, ttl)

    def _scan_keys(
        self, cur: sqlite3.Cursor, ns: str, tenant: str, kind: str, prefix: str | None
    ) -> list[tuple[str, str]]:
        now = self._now_ms()
        if ":" in ns or ":" in tenant or ":" in kind:
            # Such keys split differently (a custom kind may hold ':'): match the
            # literal prefix of the whole canonical key instead.
            whole = f"{ns}:{tenant}:{kind}:{prefix or ''}"
            cur.execute(self._sql.scan_key_prefix, (whole, whole, whole, now))
        elif prefix:
            cur.execute(self._sql.scan_prefix, (kind, ns, tenant, prefix, prefix, prefix, now))
        else:
            cur.execute(self._sql.scan, (kind, ns, tenant, now))
        return cur.fetchall()

    async def scan_keys(
        self, namespace: str, tenant: str, kind: str, prefix: str | None = None
    ) -> list[tuple[str, str]]:
        return await self._run(self._scan_keys, namespace, tenant, str(kind), prefix)

    def _scan_kind(self, cur: sqlite3.Cursor, kind: str) -> list[tuple[str, str]]:
        if ":" in kind:  # a third segment never contains ':'
            return []
        return cur.execute(self._sql.scan_kind, (kind, self._now_ms())).fetchall()

    async def scan_keys_by_kind(self, kind: str) -> list[tuple[str, str]]:
        return await self._run(self._scan_kind, str(kind))

    # ------------------------------------------------------------------ indexes

    @staticmethod
    def _exec(cur: sqlite3.Cursor, sql: str, params: tuple[Any, ...]) -> None:
        cur.execute(sql, params)

    @staticmethod
    def _keys(cur: sqlite3.Cursor, sql: str, now_ms: int) -> list[str]:
        return [row[0] for row in cur.execute(sql, (now_ms,))]

    async def index_timeout(self, key: KeyLike, expires_at_ms: int) -> None:
        await self._run(self._exec, self._sql.index_timeout, (canonical(key), int(expires_at_ms)))

    async def remove_timeout_index(self, key: KeyLike) -> None:
        await self._run(self._exec, self._sql.remove_timeout, (canonical(key),))

    async def get_expired_timeouts(self, now_ms: int) -> list[str]:
        return await self._run(self._keys, self._sql.expired_timeouts, int(now_ms))

    async def index_chain_ready(self, key: KeyLike, ready_at_ms: int) -> None:
        await self._run(self._exec, self._sql.index_chain, (canonical(key), int(ready_at_ms)))

    async def remove_chain_ready_index(self, key: KeyLike) -> None:
        await self._run(self._exec, self._sql.remove_chain, (canonical(key),))

    async def get_ready_chains(self, now_ms: int) -> list[str]:
        return await self._run(self._keys, self._sql.ready_chains, int(now_ms))

    # ------------------------------------------------------------------ fast paths

    def _claim(self, cur: sqlite3.Cursor, name: str, owner: str, lock_ttl: float) -> bool:
        now = self._now_ms()
        cur.execute(self._sql.lock_acquire, (name, owner, now + int(lock_ttl * 1000), now))
        return cur.rowcount == 1

    def _claim_and(
        self, cur: sqlite3.Cursor, name: str, owner: str, lock_ttl: float, op: Callable[..., T], *args: Any
    ) -> tuple[bool, T | None]:
        """Take the lock and run ``op`` in one IMMEDIATE transaction (one commit)."""
        cur.execute("BEGIN IMMEDIATE")
        try:
            if not self._claim(cur, name, owner, lock_ttl):
                cur.execute("COMMIT")
                return False, None
            result = op(cur, *args)
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise
        return True, result

    async def claim_and_check_and_set(
        self, lock_name: str, lock_ttl: float, key: KeyLike, value: str, ttl: float | None = None
    ) -> tuple[LockGuard | None, bool]:
        lock = self.distributed_lock()
        owner = os.urandom(16).hex()
        taken, created = await self._run(
            self._claim_and, lock_name, owner, lock_ttl, self._check_and_set, canonical(key), value, ttl
        )
        if not taken:
            return None, False
        return _SQLiteGuard(lock, lock_name, owner), bool(created)

    def _window_in_txn(self, cur: sqlite3.Cursor, k: str, delta: int, expires_at_ms: int) -> int:
        # Inside the claim transaction: the IMMEDIATE lock is already held.
        return self._add_in_txn(cur, k, delta, None, expires_at_ms, self._now_ms())

    async def claim_and_increment_window(
        self, lock_name: str, lock_ttl: float, key: KeyLike, delta: int, expires_at_ms: int
    ) -> tuple[LockGuard | None, int]:
        lock = self.distributed_lock()
        owner = os.urandom(16).hex()
        taken, count = await self._run(
            self._claim_and, lock_name, owner, lock_ttl, self._window_in_txn,
            canonical(key), int(delta), int(expires_at_ms),
        )
        if not taken:
            return None, 0
        return _SQLiteGuard(lock, lock_name, owner), int(count or 0)

    # ------------------------------------------------------------------ maintenance

    def _sweep(self, cur: sqlite3.Cursor, sql: str) -> int:
        now = self._now_ms()
        total = 0
        while True:
            cur.execute(sql, (now,))
            total += cur.rowcount
            if cur.rowcount < _SWEEP_BATCH:
                return total

    async def sweep_expired(self) -> int:
        """Delete expired entries in batches of 1000 (in a worker thread); returns how many.

        Any process sharing the file may run it; call it periodically (the
        gateway's background processor does), or expired rows stay on disk.
        """
        return await anyio.to_thread.run_sync(self._in_worker, self._sweep, (self._sql.sweep_state,))


class _SQLiteGuard(LockGuard):
    __slots__ = ("_lock", "name", "owner")

    def __init__(self, lock: SQLiteDistributedLock, name: str, owner: str) -> None:
        self._lock = lock
        self.name = name
        self.owner = owner

    def __repr__(self) -> str:
        return f"<SQLite lock guard {self.name!r}>"

    async def release(self) -> bool:
        return await self._lock._store._run(self._lock._release, self.name, self.owner)

    async def extend(self, ttl: float) -> None:
        if not await self._lock._store._run(self._lock._extend, self.name, self.owner, ttl):
            raise LockExpired(self.name)

    async def is_held(self) -> bool:
        return await self._lock._store._run(self._lock._held, self.name, self.owner)


class SQLiteDistributedLock(DistributedLock):
    """Owner-fenced named locks in the ``{prefix}locks`` table of a :class:`SQLiteStateStore`.

    Get it from :meth:`SQLiteStateStore.distributed_lock`. Mutual exclusion holds
    across every process of the host that opens the file, as long as the critical
    section is shorter than the lock's TTL.
    """

    def __init__(self, store: SQLiteStateStore) -> None:
        self._init_clock(store.clock if store._clock_explicit else None)
        self._clock = store.clock
        self._store = store
        self._sql = store._sql

    def _try(self, cur: sqlite3.Cursor, name: str, owner: str, ttl: float) -> bool:
        now = self._now_ms()
        cur.execute(self._sql.lock_acquire, (name, owner, now + int(ttl * 1000), now))
        return cur.rowcount == 1

    async def try_acquire(self, name: str, ttl: float) -> LockGuard | None:
        owner = os.urandom(16).hex()
        if await self._store._run(self._try, name, owner, ttl):
            return _SQLiteGuard(self, name, owner)
        return None

    def _release(self, cur: sqlite3.Cursor, name: str, owner: str) -> bool:
        cur.execute(self._sql.lock_release, (name, owner))
        return cur.rowcount == 1

    def _extend(self, cur: sqlite3.Cursor, name: str, owner: str, ttl: float) -> bool:
        now = self._now_ms()
        cur.execute(self._sql.lock_extend, (now + int(ttl * 1000), name, owner, now))
        return cur.rowcount == 1

    def _held(self, cur: sqlite3.Cursor, name: str, owner: str) -> bool:
        return cur.execute(self._sql.lock_held, (name, owner, self._now_ms())).fetchone() is not None

    async def sweep_expired(self) -> int:
        """Delete expired locks in batches of 1000 (in a worker thread); returns how many."""
        store = self._store
        return await anyio.to_thread.run_sync(store._in_worker, store._sweep, (self._sql.sweep_locks,))
