"""A small auto-pipelining Redis client shared by the Redis state and audit stores.

Why not redis-py's client on the hot path: each redis-py command costs ~50 µs
of client CPU (command object, connection checkout, parser, timeout context),
so concurrency alone cannot beat the round trip. This client keeps one
multiplexed connection per event loop and does the minimum per call:

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

Only RESP2 and a single (non-cluster) server are supported. ``redis://``,
``rediss://`` (TLS) and ``unix://`` URLs are understood; user, password and
database number come from the URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from acteon._exceptions import ConfigurationError, MissingDependencyError, UsageError

try:
    import hiredis
except ImportError:  # pragma: no cover - exercised only without the extra
    hiredis = None  # type: ignore[assignment]

from asyncio.events import _get_running_loop

log = logging.getLogger("acteon.redis")

ErrorFactory = Callable[[str], Exception]


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


# ------------------------------------------------------------------------- URL


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where and how to connect, parsed from a URL."""

    display: str  # the URL with any password masked, for messages
    host: str | None
    port: int
    path: str | None  # unix socket path
    db: int
    username: str | None
    password: str | None
    tls: bool
    tls_insecure: bool


def parse_redis_url(url: str, *, tls_insecure: bool = False) -> RedisAddress:
    """``redis://[user:pass@]host[:port][/db]``, ``rediss://...``, ``unix:///path?db=N``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"unsupported Redis URL {url!r}: use redis://, rediss:// or unix://")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and "password" in query:
        password = query["password"]
    db_text = query.get("db")
    path: str | None = None
    host: str | None = None
    if scheme == "unix":
        path = parts.path
        if not path:
            raise ConfigurationError(f"Redis URL {url!r} names no socket path")
    else:
        host = parts.hostname or "127.0.0.1"
        segment = parts.path.lstrip("/")
        if segment:
            db_text = segment
    try:
        port = parts.port or 6379
        db = int(db_text) if db_text else 0
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {url!r}: {exc}") from None
    if query.get("ssl_cert_reqs", "").lower() in ("none", "optional"):
        tls_insecure = True
    display = url
    if parts.password is not None:
        display = url.replace(f":{parts.password}@", ":***@", 1)
    return RedisAddress(
        display=display,
        host=host,
        port=port,
        path=path,
        db=db,
        username=username,
        password=password,
        tls=scheme == "rediss",
        tls_insecure=tls_insecure,
    )


# ---------------------------------------------------------------------- scripts

_LUA = resources.files("acteon.state").joinpath("_lua")


class Script:
    """A Lua script run with ``EVALSHA`` (``EVAL`` once when the server lost it).

    With a fixed ``numkeys`` callers pass keys then arguments; with
    ``numkeys=None`` they pass the number of keys first.
    """

    __slots__ = ("body", "eval_head", "evalsha_head", "name", "numkeys", "sha")

    def __init__(self, name: str, body: str, numkeys: int | None) -> None:
        self.name = name
        self.body = body
        self.numkeys = numkeys
        self.sha = hashlib.sha1(body.encode()).hexdigest()
        tail: tuple[int, ...] = () if numkeys is None else (numkeys,)
        self.evalsha_head: tuple[str | int, ...] = ("EVALSHA", self.sha, *tail)
        self.eval_head: tuple[str | int, ...] = ("EVAL", body, *tail)

    @classmethod
    def load(cls, name: str, numkeys: int | None, *, prelude: str | None = None) -> Script:
        """Read ``_lua/{name}.lua`` (package data), optionally after ``_lua/{prelude}.lua``."""
        body = _LUA.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        if prelude is not None:
            body = _LUA.joinpath(f"{prelude}.lua").read_text(encoding="utf-8") + "\n" + body
        return cls(name, body, numkeys)

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"


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


# ----------------------------------------------------------------------- client


class RedisClient:
    """Auto-pipelining client bound to the event loop it is used from.

    ``connection_error`` / ``backend_error`` build the exceptions raised for
    an unreachable server and for error replies; ``reply_error`` may
    override the latter per message (e.g. ``NOTINT`` -> serialization error).
    """

    def __init__(
        self,
        url: str,
        *,
        scripts: Sequence[Script] = (),
        socket_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        deferred_delay: float | None = 0.002,
        tls_insecure: bool = False,
        client_name: str | None = None,
        connection_error: ErrorFactory,
        backend_error: ErrorFactory,
        reply_error: ErrorFactory | None = None,
    ) -> None:
        require_hiredis("the Redis backends")
        self.address = parse_redis_url(url, tls_insecure=tls_insecure)
        self.scripts = tuple(scripts)
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.deferred_delay = deferred_delay
        self.client_name = client_name
        self._connection_error = connection_error
        self._reply_error = reply_error or backend_error
        self._backend_error = backend_error
        self._conn: _Connection | None = None
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Future[_Connection]] | None = None
        #: Batches written and commands sent, over every connection (tests, tuning).
        self.stats = Stats()
        #: ``True`` disables auto-pipelining: every command is written on its own.
        self.immediate = False
        self.deferred_errors: list[str] = []

    @property
    def url(self) -> str:
        return self.address.display

    # -- connecting

    def _usable(self) -> _Connection | None:
        conn = self._conn
        if conn is None or conn.closed or conn.loop is not _get_running_loop():
            return None
        return conn

    async def connect(self) -> _Connection:
        """The connection for the running loop, opened (or reopened) when needed."""
        conn = self._usable()
        if conn is not None:
            return conn
        loop = _get_running_loop()
        if loop is None:
            raise UsageError("the Redis backends run on asyncio only; call them from an asyncio event loop")
        pending = self._connecting
        if pending is not None and pending[0] is loop:
            return await asyncio.shield(pending[1])
        fut: asyncio.Future[_Connection] = loop.create_future()
        self._connecting = (loop, fut)
        try:
            conn = await self._open(loop)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)
                fut.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._connecting = None
        old, self._conn = self._conn, conn
        if old is not None:
            _abandon(old)
        fut.set_result(conn)
        return conn

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        addr = self.address
        conn = _Connection(loop, self.deferred_delay, self.stats)
        try:
            async with asyncio.timeout(self.connect_timeout):
                if addr.path is not None:
                    await loop.create_unix_connection(lambda: conn, addr.path)
                else:
                    ctx: ssl.SSLContext | None = None
                    if addr.tls:
                        ctx = ssl.create_default_context()
                        if addr.tls_insecure:
                            ctx.check_hostname = False
                            ctx.verify_mode = ssl.CERT_NONE
                    await loop.create_connection(
                        lambda: conn,
                        addr.host or "127.0.0.1",
                        addr.port,
                        ssl=ctx,
                        server_hostname=addr.host if ctx is not None else None,
                    )
                handshake: list[tuple[Any, ...]] = []
                if addr.password is not None:
                    if addr.username:
                        handshake.append(("AUTH", addr.username, addr.password))
                    else:
                        handshake.append(("AUTH", addr.password))
                if addr.db:
                    handshake.append(("SELECT", addr.db))
                if self.client_name:
                    handshake.append(("CLIENT", "SETNAME", self.client_name))
                for script in self.scripts:
                    handshake.append(("SCRIPT", "LOAD", script.body))
                futures = [conn.submit(_pack(cmd)) for cmd in handshake]
                for cmd, fut in zip(handshake, futures, strict=True):
                    reply = await fut
                    if isinstance(reply, ReplyError):
                        if cmd[0] in ("AUTH", "SELECT"):
                            raise ConnectionLost(f"{cmd[0]} failed: {reply}")
                        # Naming the client and preloading scripts are optimisations
                        # (an ACL may forbid them; scripts then load through EVAL).
                        log.debug("Redis %s %s refused: %s", cmd[0], cmd[1], reply)
        except (OSError, TimeoutError, ConnectionLost, ssl.SSLError) as exc:
            _abandon(conn)
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise self._connection_error(f"cannot connect to Redis at {addr.display}: {reason}") from None
        except BaseException:
            _abandon(conn)
            raise
        if self.socket_timeout:
            conn.start_watchdog(self.socket_timeout)
        conn.immediate = self.immediate
        return conn

    # -- commands

    def _lost(self, exc: ConnectionLost) -> Exception:
        return self._connection_error(f"lost connection to Redis at {self.address.display}: {exc}")

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply (raises on an error reply)."""
        conn = self._usable() or await self.connect()
        fut = conn.submit(_pack(args))
        try:
            reply = await fut
        except ConnectionLost as exc:
            raise self._lost(exc) from None
        if isinstance(reply, ReplyError):
            raise self._reply_error(str(reply))
        return reply

    async def call_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send commands in one batch; the replies, with :class:`ReplyError` objects left in place."""
        conn = self._usable() or await self.connect()
        pack = _pack
        futures = [conn.submit(pack(cmd)) for cmd in commands]
        try:
            return [await fut for fut in futures]
        except ConnectionLost as exc:
            raise self._lost(exc) from None

    async def run(self, script: Script, *args: Any) -> Any:
        """``EVALSHA`` the script with ``args`` = its keys then its arguments."""
        conn = self._usable() or await self.connect()
        fut = conn.submit(_pack(script.evalsha_head + args))
        try:
            reply = await fut
        except ConnectionLost as exc:
            raise self._lost(exc) from None
        if isinstance(reply, ReplyError):
            return await self._script_error(script, args, reply)
        return reply

    async def _script_error(self, script: Script, args: tuple[Any, ...], reply: ReplyError) -> Any:
        if str(reply).startswith("NOSCRIPT"):
            # The server's script cache was flushed: EVAL loads it again.
            reply = await self.call_raw(script.eval_head + args)
            if not isinstance(reply, ReplyError):
                return reply
        raise self._reply_error(str(reply))

    async def call_raw(self, args: tuple[Any, ...]) -> Any:
        conn = self._usable() or await self.connect()
        try:
            return await conn.submit(_pack(args))
        except ConnectionLost as exc:
            raise self._lost(exc) from None

    async def run_many(self, items: Sequence[tuple[Script, tuple[Any, ...]]]) -> list[Any]:
        """Run several scripts in one batch; error replies are returned as exceptions."""
        conn = self._usable() or await self.connect()
        pack = _pack
        futures = [conn.submit(pack(script.evalsha_head + args)) for script, args in items]
        out: list[Any] = []
        try:
            for (script, args), fut in zip(items, futures, strict=True):
                reply = await fut
                if isinstance(reply, ReplyError):
                    try:
                        reply = await self._script_error(script, args, reply)
                    except Exception as exc:
                        reply = exc
                out.append(reply)
        except ConnectionLost as exc:
            raise self._lost(exc) from None
        return out

    def run_deferred_nowait(self, script: Script, *args: Any) -> bool:
        """Queue the script on the open connection without awaiting anything.

        Usable from a ``finally``/``except CancelledError`` block; ``False``
        when there is no open connection on this loop (nothing queued).
        """
        conn = self._usable()
        if conn is None:
            return False
        conn.submit_deferred(
            _pack(script.evalsha_head + args),
            lambda reply: self._deferred_reply(script, args, reply, None),
        )
        return True

    async def run_deferred(
        self, script: Script, *args: Any, on_error: Callable[[str], None] | None = None
    ) -> None:
        """Queue the script without waiting: it rides with the next batch.

        It is written with the next command this client sends, after
        ``deferred_delay`` seconds if nothing else is sent, or on :meth:`drain`
        / :meth:`aclose`. An error reply goes to ``on_error`` (default: logged).
        """
        conn = self._usable() or await self.connect()
        conn.submit_deferred(
            _pack(script.evalsha_head + args),
            lambda reply: self._deferred_reply(script, args, reply, on_error),
        )

    def _deferred_reply(
        self,
        script: Script,
        args: tuple[Any, ...],
        reply: Any,
        on_error: Callable[[str], None] | None,
    ) -> None:
        if isinstance(reply, ConnectionLost):
            message = f"{script.name}: not applied, connection lost ({reply})"
        elif isinstance(reply, ReplyError):
            conn = self._conn
            if str(reply).startswith("NOSCRIPT") and conn is not None and not conn.closed:
                conn.submit_deferred(
                    _pack(script.eval_head + args),
                    lambda again: self._deferred_reply(script, args, again, on_error),
                )
                return
            message = f"{script.name}: {reply}"
        else:
            return
        if on_error is not None:
            on_error(message)
        else:
            self.deferred_errors.append(message)
            log.warning("deferred Redis command failed: %s", message)

    async def drain(self) -> None:
        """Send everything queued (deferred commands included) and wait for the replies."""
        conn = self._usable()
        if conn is None or not conn.sinks:
            return
        try:
            await conn.submit(_PING)
        except ConnectionLost as exc:
            raise self._lost(exc) from None

    async def aclose(self) -> None:
        """Flush what is queued, wait for it, close the socket. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is None or conn.closed:
            return
        if conn.loop is not _get_running_loop():
            _abandon(conn)
            return
        try:
            if conn.sinks:
                async with asyncio.timeout(self.socket_timeout):
                    await conn.submit(_PING)
        except (ConnectionLost, TimeoutError):
            pass
        finally:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        try:
            async with asyncio.timeout(1.0):
                await asyncio.shield(conn.lost)
        except TimeoutError:  # pragma: no cover
            conn.transport.abort() if conn.transport is not None else None


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
