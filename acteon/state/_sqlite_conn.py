"""Connection handling shared by the SQLite state and audit stores (state-audit.md A10).

One :class:`ConnectionPool` per store keeps **one connection per OS thread** (a
``sqlite3`` connection must never be used by two threads at once) in a
``threading.local``. Connections are opened lazily with ``isolation_level=None``
so the store alone decides where transactions begin, switched to WAL, and the
schema is created once per process inside ``BEGIN IMMEDIATE``.

Two kinds of connection exist per thread:

- the *inline* one, used on the event-loop thread, has a busy timeout of zero:
  when the file's write lock is taken by someone else it fails at once with
  ``database is locked`` and the store hands the operation to a worker thread
  instead of blocking the loop;
- the *worker* one, used in worker threads, waits up to ``busy_timeout`` in
  SQLite's busy handler, and :func:`run_with_retry` retries whole operations
  with jittered backoff until an overall deadline.

Fork safety: a connection must never be used in a child process. After
``os.fork()`` every pool forgets its connections (without closing them: closing
an inherited descriptor could drop locks SQLite believes it holds) and opens
new ones on first use.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from acteon._exceptions import ConfigurationError

T = TypeVar("T")

MIN_SQLITE_VERSION = (3, 24, 0)
"""UPSERT with a ``WHERE`` on ``DO UPDATE`` arrived in SQLite 3.24."""

HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""``RETURNING`` (3.35) is used when present; every statement has a fallback."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def check_sqlite_version() -> None:
    """Refuse to run on a SQLite library older than 3.24 with a clear message."""
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise ConfigurationError(
            f"the SQLite backends need SQLite >= 3.24 (UPSERT); this Python is linked to "
            f"SQLite {sqlite3.sqlite_version}"
        )


def normalize_synchronous(value: str) -> str:
    """Validate the ``synchronous`` option (``NORMAL`` or ``FULL`` in practice)."""
    text = str(value).upper()
    if text not in _SYNCHRONOUS:
        raise ConfigurationError(f"unknown synchronous mode {value!r}; known: {', '.join(_SYNCHRONOUS)}")
    return text


def check_prefix(prefix: str) -> str:
    """Table prefixes are pasted into SQL, so only ``[A-Za-z0-9_]`` is allowed."""
    if not prefix.replace("_", "a").isalnum() or not prefix.isascii():
        raise ConfigurationError(f"table prefix {prefix!r} may only contain letters, digits and '_'")
    return prefix


def is_busy(exc: sqlite3.Error) -> bool:
    """``database is locked`` / ``database table is locked``: nothing was written, retry."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


# ----------------------------------------------------------------------- fork safety

_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
_fork_hooks: list[Callable[[], None]] = []
# Connections inherited from a parent process: kept referenced forever so the
# child never closes (and thereby unlocks) descriptors it does not own.
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._forget_after_fork()
    for hook in list(_fork_hooks):
        hook()


def register_fork_hook(hook: Callable[[], None]) -> None:
    """Call ``hook`` in the child after ``os.fork()`` (used by the audit buffer)."""
    _fork_hooks.append(hook)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Slot(threading.local):
    inline: sqlite3.Cursor | None = None
    worker: sqlite3.Cursor | None = None


class ConnectionPool:
    """Per-thread connections to one database file, reopened after fork.

    ``init_schema(cursor)`` runs once per process on the first connection, inside
    ``BEGIN IMMEDIATE`` (so processes starting together do not race); it must use
    ``CREATE ... IF NOT EXISTS``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str,
        busy_timeout: float,
        init_schema: Callable[[sqlite3.Cursor], None],
    ) -> None:
        check_sqlite_version()
        self.path = os.fspath(path)
        self.synchronous = normalize_synchronous(synchronous)
        self.busy_timeout = float(busy_timeout)
        self._init_schema = init_schema
        self._slot = _Slot()
        self._guard = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._pid = os.getpid()
        _pools.add(self)

    # ------------------------------------------------------------------ access

    def inline(self) -> sqlite3.Cursor:
        """The calling thread's no-wait cursor (for the event-loop thread)."""
        cur = self._slot.inline
        if cur is None:
            cur = self._slot.inline = self._open(0.0)
        return cur

    def worker(self) -> sqlite3.Cursor:
        """The calling thread's waiting cursor (busy timeout ``busy_timeout``)."""
        cur = self._slot.worker
        if cur is None:
            cur = self._slot.worker = self._open(self.busy_timeout)
        return cur

    def _open(self, timeout: float) -> sqlite3.Cursor:
        if self._pid != os.getpid():  # fork without the hook (should not happen)
            self._forget_after_fork()
        conn = sqlite3.connect(
            self.path,
            timeout=max(timeout, self.busy_timeout),
            isolation_level=None,
            check_same_thread=False,
            uri=self.path.startswith("file:"),
        )
        try:
            cur = conn.cursor()
            self._ensure_schema(cur)
            # The busy handler only matters for writes; the inline connection must
            # never wait, it hands the operation to a worker thread instead.
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.execute(f"PRAGMA synchronous={self.synchronous}")
        except BaseException:
            conn.close()
            raise
        with self._guard:
            self._opened.append(conn)
        return cur

    def _ensure_schema(self, cur: sqlite3.Cursor) -> None:
        if self._schema_ready:
            return
        with self._guard:
            if self._schema_ready:
                return
            run_with_retry(lambda: self._create(cur), deadline=max(30.0, self.busy_timeout))
            self._schema_ready = True

    def _create(self, cur: sqlite3.Cursor) -> None:
        # journal_mode is stored in the file; it cannot change inside a transaction.
        mode = cur.execute("PRAGMA journal_mode").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("BEGIN IMMEDIATE")
        try:
            self._init_schema(cur)
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise

    # ------------------------------------------------------------------ lifecycle

    def _forget_after_fork(self) -> None:
        _inherited.append(self._opened)
        self._opened = []
        self._slot = _Slot()
        self._guard = threading.Lock()
        self._pid = os.getpid()

    def close(self) -> None:
        """Close every connection this process opened; later use reopens lazily."""
        with self._guard:
            opened, self._opened = self._opened, []
            self._slot = _Slot()
        for conn in opened:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass


def rollback(cur: sqlite3.Cursor) -> None:
    """Roll back if a transaction is open; never raises."""
    try:
        if cur.connection.in_transaction:
            cur.execute("ROLLBACK")
    except sqlite3.Error:  # pragma: no cover - the connection is unusable anyway
        pass


def run_with_retry(fn: Callable[[], T], *, deadline: float) -> T:
    """Call ``fn`` until it does not fail with ``database is locked`` or ``deadline`` s pass.

    Each attempt already waits in SQLite's busy handler; between attempts the
    thread sleeps with jittered exponential backoff (1 ms doubling to 100 ms), so
    contending processes do not retry in lockstep. The last busy error is
    re-raised once the deadline has passed.
    """
    delay = 0.001
    end: float | None = None
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            now = time.monotonic()
            if end is None:
                end = now + deadline
            elif now >= end:
                raise
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, end - now)))
            delay = min(delay * 2, 0.1)
