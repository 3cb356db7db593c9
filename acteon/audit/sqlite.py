"""SQLite audit store: buffered appends, every filter, stable keyset paging (state-audit.md B2-B6).

Audit writes must not slow dispatch, so :meth:`SQLiteAuditStore.record` only
appends the record to an in-memory buffer and returns. A flusher thread writes
the buffer as one ``executemany`` in one ``BEGIN IMMEDIATE`` transaction when
``batch_size`` records are waiting or ``flush_interval`` seconds after the first
one arrived. :meth:`~SQLiteAuditStore.flush` writes everything now, and
:meth:`~SQLiteAuditStore.aclose` flushes before it closes. Reads
(``query``, ``get_by_id``, ``get_by_action_id``) and ``cleanup_expired`` flush
first, so a writer always reads its own writes.

Two exceptions to buffering:

- A record that carries a ``sequence_number`` (a hash-chained record) is written
  at once, after everything buffered before it. A duplicate
  ``(namespace, tenant, sequence_number)`` raises
  ``AuditStorageError("unique constraint violation: ...")`` from ``record``
  itself, which is what the hash-chain layer retries on.
- A buffered record rejected by the database (a duplicate ``id``) cannot
  raise from the ``record`` call that accepted it. The batch is then written
  row by row, so the other records of the batch are kept. The rejected record
  is logged on the ``acteon.audit`` logger and reported by the next
  :meth:`~SQLiteAuditStore.flush` or :meth:`~SQLiteAuditStore.aclose`, which raise
  :class:`~acteon.AuditStorageError` for it.

Rows hold the B1 fields with JSON as compact text and timestamps as RFC 3339 text
(the wire form, so reads return exactly what was written). Integer columns
``dispatched_at_ms`` (the sort and cursor key, D20), ``dispatched_at_us`` (exact
``from``/``to`` bounds) and ``expires_at_ms`` (cleanup) are kept next to them.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from acteon._clock import Clock
from acteon._exceptions import AuditError, AuditSerializationError, AuditStorageError
from acteon.audit._base import AuditStore
from acteon.audit._model import (
    INTENT_OUTCOME,
    AuditPage,
    AuditQuery,
    AuditRecord,
    Cursor,
    check_cursor_kind,
)
from acteon.audit._sqlite_rows import (
    _ROW_ERRORS,
    _SELECT,
    _SQL,
    _from_row,
    _row_error,
    _to_row,
    _unique_error,
    _us,
)
from acteon.state._sqlite_conn import (
    ConnectionPool,
    check_prefix,
    is_busy,
    register_fork_hook,
    rollback,
    run_with_retry,
)

__all__ = ["SQLiteAuditStore"]

T = TypeVar("T")
log = logging.getLogger("acteon.audit")

# Live stores, for the fork hook and the best-effort flush at interpreter exit.
_stores: weakref.WeakSet[SQLiteAuditStore] = weakref.WeakSet()


def _reset_all_after_fork() -> None:
    for store in list(_stores):
        store._forget_after_fork()


def _flush_all_at_exit() -> None:
    for store in list(_stores):
        try:
            store._drain()
        except Exception:  # pragma: no cover - nothing left to report to
            log.exception("audit records could not be written at interpreter exit")


register_fork_hook(_reset_all_after_fork)
atexit.register(_flush_all_at_exit)


class SQLiteAuditStore(AuditStore):
    """An :class:`AuditStore` in one SQLite file (one host, any number of processes).

    Args:
        path: the database file (created with its table when missing).
        clock: time source for :meth:`cleanup_expired`; default the gateway's / system clock.
        prefix: table-name prefix (``acteon_audit``).
        batch_size: write as soon as this many records are buffered.
        flush_interval: seconds a buffered record waits at most before it is written.
        synchronous: ``NORMAL`` or ``FULL`` (``FULL`` for compliance audit files: a
            power loss cannot drop committed records).
        busy_timeout: seconds a writer waits for the file's write lock per attempt.
        max_pending: buffered records beyond which ``record`` waits for a flush
            (back-pressure; default ``64 * batch_size``).
        retry_deadline: seconds to keep retrying a locked database before giving up.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        prefix: str = "acteon_",
        batch_size: int = 256,
        flush_interval: float = 0.05,
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        max_pending: int | None = None,
        retry_deadline: float = 30.0,
    ) -> None:
        if clock is not None:
            self._clock = clock
            self._clock_explicit = True
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._sql = _SQL(check_prefix(prefix))
        self._pool = ConnectionPool(
            path, synchronous=synchronous, busy_timeout=busy_timeout, init_schema=self._create_schema
        )
        self.path = self._pool.path
        self.prefix = prefix
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending if max_pending is not None else 64 * batch_size
        self.retry_deadline = retry_deadline
        self._init_buffer()
        _stores.add(self)

    def _init_buffer(self) -> None:
        self._pending: list[AuditRecord] = []
        self._cond = threading.Condition(threading.Lock())
        self._writer = threading.Lock()  # one batch in flight at a time, in order
        self._rejected: list[AuditError] = []  # not yet reported by flush()
        self._thread: threading.Thread | None = None
        self._stop = False

    def _forget_after_fork(self) -> None:
        # The buffer belongs to the parent (it will write it); the flusher thread
        # does not exist in the child.
        self._init_buffer()

    def __repr__(self) -> str:
        return f"SQLiteAuditStore({self.path!r})"

    def _create_schema(self, cur: sqlite3.Cursor) -> None:
        for statement in self._sql.schema:
            cur.execute(statement)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the file and table and start the flusher thread (idempotent)."""
        await anyio.to_thread.run_sync(self._call, self._pool.worker)
        self._ensure_flusher()

    async def flush(self) -> None:
        """Write every buffered record now.

        Raises :class:`~acteon.AuditStorageError` if a buffered record was rejected
        (a duplicate ``id``) since the last flush: the others are written.
        """
        if self._pending or self._rejected or self._writer.locked():
            await anyio.to_thread.run_sync(self._flush_sync)

    async def aclose(self) -> None:
        """Stop the flusher, write everything buffered and close the connections. Idempotent."""
        await anyio.to_thread.run_sync(self._close_sync)

    def _ensure_flusher(self) -> None:
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._stop = False
                    thread = threading.Thread(
                        target=self._flusher, name=f"acteon-audit-flusher[{self.path}]", daemon=True
                    )
                    self._thread = thread
                    thread.start()

    def _flusher(self) -> None:
        cond = self._cond
        backoff = 0.0
        while True:
            with cond:
                while not self._pending and not self._stop:
                    cond.wait()
                if self._stop:
                    return
                # Give the batch up to flush_interval to fill.
                deadline = time.monotonic() + max(self.flush_interval, backoff)
                while len(self._pending) < self.batch_size and not self._stop:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
            try:
                self._drain()
                backoff = 0.0
            except Exception:
                # Records went back into the buffer; try again later.
                backoff = min(max(backoff * 2, 0.1), 5.0)
                log.exception("audit flush failed; retrying in %.1f s", backoff)

    def _close_sync(self) -> None:
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            thread.join()
            self._thread = None
            self._stop = False
        try:
            self._flush_sync()
        finally:
            self._pool.close()

    # ------------------------------------------------------------------ writing

    async def record(self, entry: AuditRecord) -> None:
        """Buffer ``entry`` (or write it at once if it carries a ``sequence_number``)."""
        if entry.sequence_number is not None:
            await anyio.to_thread.run_sync(self._write_through, entry)
            return
        cond = self._cond
        with cond:
            pending = self._pending
            pending.append(entry)
            n = len(pending)
            if n == 1 or n == self.batch_size:
                cond.notify()
        if self._thread is None:
            self._ensure_flusher()
        if n >= self.max_pending:
            await self.flush()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries on a locked database; map sqlite errors to AuditStorageError."""
        try:
            return run_with_retry(fn, deadline=self.retry_deadline)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise AuditStorageError(
                    f"database is locked: gave up after {self.retry_deadline:g} s on {self.path}"
                ) from exc
            raise AuditStorageError(str(exc)) from exc

    def _drain(self) -> None:
        """Write everything buffered so far (waits for a batch already in flight)."""
        with self._writer:
            self._drain_locked()

    def _drain_locked(self) -> None:
        with self._cond:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self._write_batch(batch)
        except BaseException:
            with self._cond:  # keep them, in order, for the next attempt
                self._pending[:0] = batch
            raise

    def _write_batch(self, batch: list[AuditRecord]) -> None:
        rows: list[tuple[Any, ...]] = []
        for r in batch:
            try:
                rows.append(_to_row(r))
            except (TypeError, ValueError, AttributeError, RecursionError) as exc:
                self._reject(AuditSerializationError(f"audit record {getattr(r, 'id', '?')}: {exc}"))
        if not rows:
            return
        cur = self._call(self._pool.worker)
        insert = self._sql.insert

        def all_at_once() -> None:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(insert, rows)
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise

        def row_by_row() -> list[tuple[tuple[Any, ...], BaseException]]:
            # A failed INSERT undoes only itself; the transaction keeps the others.
            bad: list[tuple[tuple[Any, ...], BaseException]] = []
            cur.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    try:
                        cur.execute(insert, row)
                    except _ROW_ERRORS as exc:
                        bad.append((row, exc))
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
            return bad

        try:
            self._call(all_at_once)
        except (AuditStorageError, OverflowError) as exc:
            cause = exc.__cause__ if isinstance(exc, AuditStorageError) else exc
            if not isinstance(cause, _ROW_ERRORS):
                raise
            for row, err in self._call(row_by_row):
                self._reject(_row_error(err, row))

    def _reject(self, error: AuditError) -> None:
        log.error("audit record rejected: %s", error)
        with self._cond:
            self._rejected.append(error)

    def _flush_sync(self) -> None:
        self._drain()
        with self._cond:
            rejected, self._rejected = self._rejected, []
        if len(rejected) == 1:
            raise rejected[0]
        if rejected:
            first = str(rejected[0]).removeprefix("storage error: ")
            raise AuditStorageError(f"{len(rejected)} buffered audit records were rejected; first: {first}")

    def _write_through(self, entry: AuditRecord) -> None:
        try:
            row = _to_row(entry)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise AuditSerializationError(f"audit record {entry.id}: {exc}") from exc
        with self._writer:
            self._drain_locked()  # keep the order of everything recorded before
            cur = self._call(self._pool.worker)
            try:
                self._call(lambda: cur.execute(self._sql.insert, row))
            except OverflowError as exc:
                raise _row_error(exc, row) from exc
            except AuditStorageError as exc:
                if isinstance(exc.__cause__, _ROW_ERRORS):
                    raise _row_error(exc.__cause__, row) from exc.__cause__
                raise

    async def record_chained(
        self, entry: AuditRecord, seal: Callable[[AuditRecord, str | None, int], AuditRecord]
    ) -> AuditRecord:
        """Hash-chained append in one ``BEGIN IMMEDIATE`` (state-audit.md B6/B8).

        Reads the chain tip of ``(namespace, tenant)``, lets ``seal`` link and
        hash ``entry`` after it and inserts the result, all under the file's
        write lock, so writers in other processes queue instead of colliding.
        Returns the stored record.
        """
        return await anyio.to_thread.run_sync(self._record_chained_sync, entry, seal)

    def _record_chained_sync(
        self, entry: AuditRecord, seal: Callable[[AuditRecord, str | None, int], AuditRecord]
    ) -> AuditRecord:
        tip_sql = (
            f"SELECT record_hash, sequence_number FROM {self._sql.table} WHERE namespace = ? AND tenant = ?"
            " AND sequence_number IS NOT NULL ORDER BY sequence_number DESC LIMIT 1"
        )
        with self._writer:
            self._drain_locked()  # keep the order of everything recorded before
            cur = self._call(self._pool.worker)

            def append() -> tuple[AuditRecord, tuple[Any, ...]]:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    tip = cur.execute(tip_sql, (entry.namespace, entry.tenant)).fetchone()
                    if tip is not None and tip[0] is not None:
                        sealed = seal(entry, tip[0], int(tip[1]) + 1)
                    else:
                        sealed = seal(entry, None, 0)
                    try:
                        row = _to_row(sealed)
                    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
                        raise AuditSerializationError(f"audit record {entry.id}: {exc}") from exc
                    cur.execute(self._sql.insert, row)
                    cur.execute("COMMIT")
                except BaseException:
                    rollback(cur)
                    raise
                return sealed, row

            try:
                return self._call(append)[0]
            except AuditStorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, sqlite3.IntegrityError):  # a duplicate id: name it
                    raise _unique_error(cause, _to_row(entry)) from cause
                raise

    # ------------------------------------------------------------------ reading

    def _read(self, fn: Callable[[sqlite3.Cursor], T]) -> T:
        self._drain()  # read your own writes
        cur = self._call(self._pool.worker)
        return self._call(lambda: fn(cur))

    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        def read(cur: sqlite3.Cursor) -> AuditRecord | None:
            row = cur.execute(self._sql.by_id, (record_id,)).fetchone()
            return None if row is None else _from_row(row)

        return await anyio.to_thread.run_sync(self._read, read)

    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        """The most recent record of the action.

        Ties on ``dispatched_at`` prefer a non-intent record, then the higher
        ``sequence_number``, then the later ``completed_at``.
        """

        def read(cur: sqlite3.Cursor) -> AuditRecord | None:
            rows = cur.execute(self._sql.by_action, (action_id, action_id)).fetchall()
            if not rows:
                return None
            records = [_from_row(row) for row in rows]
            return max(
                records,
                key=lambda r: (
                    r.outcome != INTENT_OUTCOME,
                    r.sequence_number if r.sequence_number is not None else -1,
                    _us(r.completed_at),
                ),
            )

        return await anyio.to_thread.run_sync(self._read, read)

    async def query(self, query: AuditQuery) -> AuditPage:
        """Filter, sort and page; cursor pages skip the count (``total`` is ``None``)."""
        cursor = Cursor.decode(query.cursor) if query.cursor else None
        if cursor is not None:
            check_cursor_kind(cursor, query)
        return await anyio.to_thread.run_sync(self._read, lambda cur: self._query(cur, query, cursor))

    def _query(self, cur: sqlite3.Cursor, q: AuditQuery, cursor: Cursor | None) -> AuditPage:
        limit = q.effective_limit
        clauses: list[str] = []
        params: list[Any] = []
        for name in AuditQuery.EQUALITY_FIELDS:
            value = getattr(q, name)
            if value is not None:
                clauses.append(f"{name} = ?")
                params.append(value)
        if q.tenant_scope:
            # B2 without LIKE: `p` itself or `p.` followed by at least one character.
            group = []
            for pattern in q.tenant_scope:
                group.append("(tenant = ? OR (length(tenant) > ? AND substr(tenant, 1, ?) = ?))")
                params += [pattern, len(pattern) + 1, len(pattern) + 1, pattern + "."]
            clauses.append("(" + " OR ".join(group) + ")")
        if q.from_ is not None:
            us = _us(q.from_)
            clauses.append("dispatched_at_ms >= ? AND dispatched_at_us >= ?")
            params += [us // 1000 - 1, us]
        if q.to is not None:
            us = _us(q.to)
            clauses.append("dispatched_at_ms <= ? AND dispatched_at_us <= ?")
            params += [us // 1000 + 1, us]
        count_where = " AND ".join(clauses)
        count_params = list(params)

        if q.sort_by_sequence_asc:
            order = "sequence_number IS NULL, sequence_number, id"
            if cursor is not None:
                if cursor.seq is None:
                    clauses.append("(sequence_number IS NULL AND id > ?)")
                    params.append(cursor.id)
                else:
                    clauses.append(
                        "(sequence_number > ? OR (sequence_number = ? AND id > ?) OR sequence_number IS NULL)"
                    )
                    params += [cursor.seq, cursor.seq, cursor.id]
        elif q.sort_by_sequence_desc:
            order = "sequence_number IS NULL, sequence_number DESC, id DESC"
        else:
            # Sort key == cursor key (D20): rows sharing a millisecond page by id.
            order = "dispatched_at_ms DESC, id DESC"
            if cursor is not None:
                clauses.append("(dispatched_at_ms < ? OR (dispatched_at_ms = ? AND id < ?))")
                params += [cursor.ts_ms or 0, cursor.ts_ms or 0, cursor.id]

        table = self._sql.table
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        offset = 0 if cursor is not None else max(0, q.offset or 0)
        select = f"SELECT {_SELECT} FROM {table}{where} ORDER BY {order} LIMIT ? OFFSET ?"
        params += [limit + 1, offset]

        total: int | None = None
        if cursor is None:
            # COUNT and page from one snapshot.
            cur.execute("BEGIN")
            try:
                count_sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {count_where}" if count_where else "")
                total = cur.execute(count_sql, count_params).fetchone()[0]
                rows = cur.execute(select, params).fetchall()
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
        else:
            rows = cur.execute(select, params).fetchall()

        records = [_from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and not q.sort_by_sequence_desc:
            next_cursor = Cursor.after(records[-1], q.sort_by_sequence_asc).encode()
        return AuditPage(records, total, limit, offset, next_cursor)

    async def cleanup_expired(self) -> int:
        """Delete records whose ``expires_at`` is at or before the clock's now; returns how many."""
        now_ms = int(self._clock.time() * 1000)

        def delete(cur: sqlite3.Cursor) -> int:
            cur.execute(self._sql.cleanup, (now_ms,))
            return cur.rowcount

        return await anyio.to_thread.run_sync(self._read, delete)

    # ------------------------------------------------------------------ introspection

    @property
    def pending(self) -> int:
        """Records accepted by :meth:`record` and not yet handed to the database."""
        return len(self._pending)
