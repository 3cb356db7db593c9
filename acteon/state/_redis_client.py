"""A small auto-pipelining Redis client shared by the Redis state and audit stores.

Why not redis-py's client on the hot path: each redis-py command costs ~50 µs
of client CPU (command object, connection checkout, parser, timeout context),
so concurrency alone cannot beat the round trip. This client keeps one
multiplexed connection per event loop.

The connection -- the outgoing buffer, when a batch is written, replies in
FIFO order, deferred commands -- is :mod:`acteon.state._redis_protocol`;
this module holds the client on top of it (connecting on each event loop,
the handshake, commands and Lua scripts) and the URL parsing.

Only RESP2 and a single (non-cluster) server are supported. ``redis://``,
``rediss://`` (TLS) and ``unix://`` URLs are understood; user, password and
database number come from the URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from asyncio.events import _get_running_loop
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from acteon._exceptions import ConfigurationError, UsageError
from acteon.state._redis_protocol import (
    _PING,
    MAX_BATCH,
    ConnectionLost,
    ReplyError,
    Stats,
    _abandon,
    _Connection,
    _pack,
    require_hiredis,
)

__all__ = [
    "MAX_BATCH",
    "ConnectionLost",
    "ErrorFactory",
    "RedisAddress",
    "RedisClient",
    "ReplyError",
    "Script",
    "Stats",
    "parse_redis_url",
    "require_hiredis",
]

log = logging.getLogger("acteon.redis")

ErrorFactory = Callable[[str], Exception]


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

