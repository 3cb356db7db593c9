"""One multiplexed Redis connection: the auto-pipelining half of :mod:`acteon.state._redis_client`.

What it does per call is the minimum:

* a command is packed by hiredis (``hiredis.pack_command``), appended to an
  outgoing buffer and paired with a future;
* the first command of an event-loop turn schedules one ``flush`` with
  ``loop.call_soon``; every command issued by any task before the loop gets
  back to it is written in the same ``transport.write`` -- one pipeline;
* two exceptions keep Redis busy instead of waiting for the whole turn: a
  command issued while the connection is idle (no reply owed) and no other
  callback is ready is written at once -- a sequential caller then pays no
  extra loop iteration before its write -- and a batch is written as soon as
  it holds ``MAX_BATCH`` commands, so the server works on the first part of a
  burst while the client is still producing the rest (with 64 dispatches in
  flight this overlap roughly halves the time per dispatch);
* replies are parsed by ``hiredis.Reader`` inside ``data_received`` and
  resolve the futures in FIFO order, so each caller sees its own reply or
  its own error (a failing command does not affect its neighbours);
* "deferred" commands (lock releases, write-behind audit records) are
  appended without a flush: they ride with the next batch, or go out after
  ``deferred_delay`` seconds if nothing else is sent, and always on
  :meth:`RedisClient.drain` / :meth:`RedisClient.aclose`. A write holding
  only deferred commands is one nobody waits for; :class:`Stats` counts
  those apart (``deferred_batches``), so ``batches - deferred_batches`` is the
  number of round trips callers waited on.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio.events import _get_running_loop
from collections import deque
from collections.abc import Callable
from typing import Any

from acteon._exceptions import MissingDependencyError

try:
    import hiredis
except ImportError:  # pragma: no cover - exercised only without the extra
    hiredis = None  # type: ignore[assignment]

log = logging.getLogger("acteon.redis")


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP form (hiredis' C packer)."""
    return hiredis.pack_command(args)  # type: ignore[no-any-return]


_PING = b"*1\r\n$4\r\nPING\r\n"


class Stats:
    """Counters kept by the client: batches written and commands sent.

    ``deferred_batches`` counts the writes that held deferred commands only
    (sent by the ``deferred_delay`` timer): no caller waited on those.
    """

    __slots__ = ("batches", "commands", "deferred_batches")

    def __init__(self) -> None:
        self.batches = 0
        self.commands = 0
        self.deferred_batches = 0

    @property
    def round_trips(self) -> int:
        """Writes that carried at least one command a caller waited on."""
        return self.batches - self.deferred_batches

    def __repr__(self) -> str:
        return (
            f"Stats(batches={self.batches}, commands={self.commands}, "
            f"deferred_batches={self.deferred_batches})"
        )


MAX_BATCH = 16
"""Commands queued in one loop turn beyond which the batch is written at once.

Measured with 64 gateway dispatches in flight on loopback (2 cores): on a quiet
machine one write per loop turn gave ~18 µs per dispatch and 16-64 gave ~15-16;
with the cores busy (load ~6) it was ~40 against ~18 for 16. Small writes let
Redis start on a burst while the client builds the rest; below ~16 the extra
``write`` calls cost more than the overlap saves."""


def require_hiredis(feature: str) -> None:
    """Raise :class:`MissingDependencyError` when the ``redis`` extra is absent."""
    if hiredis is None:
        raise MissingDependencyError("redis", feature)


class ReplyError(Exception):
    """An error reply from Redis (``-ERR ...``); handed to the caller, never raised here."""


class ConnectionLost(Exception):
    """Set on the futures of commands whose connection went away."""


# ------------------------------------------------------------------- connection

Sink = asyncio.Future[Any] | Callable[[Any], None] | None


class _Connection(asyncio.Protocol):
    """One socket: an outgoing buffer flushed once per loop turn, replies in FIFO order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deferred_delay: float | None, stats: Stats) -> None:
        self.loop = loop
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        if hiredis is None:  # pragma: no cover
            raise MissingDependencyError("redis", "the Redis backends")
        self.reader = hiredis.Reader(replyError=ReplyError, encoding="utf-8", errors="replace")
        self.sinks: deque[Sink] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.immediate = False  # write each command at once (no auto-pipelining)
        self.max_batch = MAX_BATCH  # write early once this many commands are queued
        # Commands in ``out`` that a caller awaits (the rest are deferred).
        self.awaited = 0
        # The loop's queue of ready callbacks: when it is empty nothing else can
        # add to this turn's batch, so an idle connection may write at once.
        # Private to asyncio's own loops; other loops (uvloop) just never write early.
        self.ready: Any = getattr(loop, "_ready", None)
        self.deferred_delay = deferred_delay
        self.deferred_handle: asyncio.TimerHandle | None = None
        self.deferred_since = 0.0  # loop time the oldest unsent deferred command was queued
        self.closed = False
        self.close_reason = "connection closed"
        self.replies = 0
        self.lost: asyncio.Future[None] = loop.create_future()
        self.watch_handle: asyncio.TimerHandle | None = None
        self._stalled = 0.0
        self._seen = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        sinks = self.sinks
        try:
            reader.feed(data)
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                self.replies += 1
                sink = sinks.popleft()
                if sink is None:
                    continue
                if isinstance(sink, asyncio.Future):
                    if not sink.done():
                        sink.set_result(reply)
                else:
                    sink(reply)
        except Exception as exc:  # protocol error or a reply without a waiter: unrecoverable
            self.abort(f"protocol error: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.close_reason == "connection closed":
            self.close_reason = str(exc) or type(exc).__name__
        self._fail_all()
        if not self.lost.done():
            self.lost.set_result(None)

    # -- sending

    def submit(self, data: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        out = self.out
        out.append(data)
        sinks = self.sinks
        sinks.append(fut)
        self.awaited += 1
        n = len(out)
        if self.immediate or n >= self.max_batch or (len(sinks) == n and self.ready is not None and not self.ready):
            # ``len(sinks) == n``: every reply owed belongs to a command not sent
            # yet, i.e. the server is idle -- and no other task can join this batch.
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        return fut

    def submit_deferred(self, data: bytes, sink: Sink) -> None:
        out = self.out
        if self.awaited == len(out):  # the first deferred command waiting in this batch
            self.deferred_since = self.loop.time()
        out.append(data)
        self.sinks.append(sink)
        if self.deferred_handle is None and self.deferred_delay is not None:
            self.deferred_handle = self.loop.call_later(self.deferred_delay, self._deferred_due)

    def _deferred_due(self) -> None:
        """Send deferred commands that waited ``deferred_delay`` without a batch to ride with."""
        self.deferred_handle = None
        if not self.out or self.flush_scheduled:
            return  # sent already, or about to be
        # The timer is armed once and never cancelled: the commands queued now may
        # be younger than the delay. Wait out their remaining time instead of
        # writing them alone -- the next command would most likely carry them.
        remaining = self.deferred_since + (self.deferred_delay or 0.0) - self.loop.time()
        if remaining > 0.0001:
            self.deferred_handle = self.loop.call_later(remaining, self._deferred_due)
            return
        self.flush()

    def flush(self) -> None:
        self.flush_scheduled = False
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        stats = self.stats
        stats.batches += 1
        stats.commands += len(out)
        if not self.awaited:
            stats.deferred_batches += 1
        self.awaited = 0
        out.clear()
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    # -- failure handling

    def _fail_all(self) -> None:
        self.closed = True
        self.out.clear()
        self.awaited = 0
        for handle in (self.deferred_handle, self.watch_handle):
            if handle is not None:
                handle.cancel()
        self.deferred_handle = self.watch_handle = None
        sinks, self.sinks = self.sinks, deque()
        error = ConnectionLost(self.close_reason)
        for sink in sinks:
            if sink is None:
                continue
            if isinstance(sink, asyncio.Future):
                if not sink.done():
                    sink.set_exception(error)
            else:
                try:
                    sink(error)
                except Exception:  # pragma: no cover - sinks are our own callbacks
                    log.exception("redis reply callback failed")

    def abort(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        self._fail_all()
        if self.transport is not None:
            self.transport.abort()

    def start_watchdog(self, timeout: float) -> None:
        """Abort when replies are owed but none arrived for ``timeout`` seconds."""
        interval = max(timeout / 4, 0.01)

        def check() -> None:
            if self.closed:
                return
            waiting = len(self.sinks) > len(self.out)
            if waiting and self.replies == self._seen:
                self._stalled += interval
                if self._stalled >= timeout:
                    self.abort(f"no reply from Redis within {timeout:g}s")
                    return
            else:
                self._stalled = 0.0
            self._seen = self.replies
            self.watch_handle = self.loop.call_later(interval, check)

        self.watch_handle = self.loop.call_later(interval, check)


def _abandon(conn: _Connection) -> None:
    """Drop a connection that belongs to another (possibly closed) loop."""
    conn.closed = True
    transport = conn.transport
    if transport is None:
        return
    try:
        if conn.loop.is_closed():
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.close()
        elif conn.loop is _get_running_loop():
            transport.abort()
        else:
            conn.loop.call_soon_threadsafe(transport.abort)
    except Exception:  # pragma: no cover - best effort
        pass
