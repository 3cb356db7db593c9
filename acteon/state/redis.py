"""Redis state store and distributed lock (``pip install 'acteon[redis]'``).

Layout (``P`` = prefix, default ``acteon``; compatible with the Rust gateway):

=====================================  ========  ==========================================
key                                    type      content
=====================================  ========  ==========================================
``P:{ns}:{tenant}:{kind}:{id}:h``      hash      ``v`` value, ``ver`` version (every write)
``P:{ns}:{tenant}:{kind}:{id}``        string    legacy form written by the Rust gateway's
                                                 ``check_and_set``/``increment``: read as
                                                 version 1, converted on the next write
``P:timeout_index``                    zset      canonical key -> ``expires_at_ms``
``P:chain_ready_index``                zset      canonical key -> ``ready_at_ms``
``P:lock:{name}``                      string    owner token, ``PX`` expiry
=====================================  ========  ==========================================

Every mutating operation is one Lua script (``EVALSHA``), so it is atomic and
costs one round trip; commands issued concurrently are auto-pipelined by
:mod:`acteon.state._redis_client`. TTLs are enforced by the Redis server's
clock (``PEXPIRE``/``PEXPIREAT``/``SET PX``): an injected ``FakeClock`` cannot
move them. Absolute times (``increment_window``'s ``expires_at_ms``, index
scores) are whatever the caller passes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from typing import Any

from acteon._clock import Clock
from acteon._exceptions import (
    LockExpired,
    StateBackendError,
    StateConnectionError,
    StateSerializationError,
    StateTimeout,
)
from acteon.state._base import CasResult, DistributedLock, LockGuard, StateStore
from acteon.state._keys import KeyLike
from acteon.state._redis_client import RedisClient, Script, require_hiredis

__all__ = ["RedisDistributedLock", "RedisStateStore"]

_P = "_state"
_CHECK_AND_SET = Script.load("check_and_set", 2, prelude=_P)
_GET = Script.load("get", 2, prelude=_P)
_GET_VERSIONED = Script.load("get_versioned", 2, prelude=_P)
_SET = Script.load("set", 2, prelude=_P)
_DELETE = Script.load("delete", 2, prelude=_P)
_INCREMENT = Script.load("increment", 2, prelude=_P)
_INCREMENT_WINDOW = Script.load("increment_window", 2, prelude=_P)
_COMPARE_AND_SWAP = Script.load("compare_and_swap", 2, prelude=_P)
_CLAIM_CHECK_AND_SET = Script.load("claim_check_and_set", 3, prelude=_P)
_CLAIM_INCREMENT_WINDOW = Script.load("claim_increment_window", 3, prelude=_P)
_SCAN_PAGE = Script.load("scan_page", 0)
_LOCK_RELEASE = Script.load("lock_release", 1)
_LOCK_EXTEND = Script.load("lock_extend", 1)

SCRIPTS = (
    _CHECK_AND_SET,
    _GET,
    _GET_VERSIONED,
    _SET,
    _DELETE,
    _INCREMENT,
    _INCREMENT_WINDOW,
    _COMPARE_AND_SWAP,
    _CLAIM_CHECK_AND_SET,
    _CLAIM_INCREMENT_WINDOW,
    _SCAN_PAGE,
    _LOCK_RELEASE,
    _LOCK_EXTEND,
)

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def _glob_escape(text: str) -> str:
    return text.translate(_GLOB_SPECIAL)


# Lock owner tokens: 80 random bits per process plus a counter, so every attempt
# gets a unique token without an os.urandom call each time. Re-seeded in a
# forked child, which would otherwise mint the parent's tokens again.
_owner_base = uuid.uuid4().hex[:20]
_owner_seq = itertools.count()


def _reseed_owner_tokens() -> None:
    global _owner_base, _owner_seq
    _owner_base = uuid.uuid4().hex[:20]
    _owner_seq = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_owner_tokens)


def _new_owner() -> str:
    return f"{_owner_base}-{next(_owner_seq):x}"


def _ttl_ms(ttl: float | None) -> int:
    """Script TTL argument: -1 none/keep, 0 already expired, else whole ms (as memory)."""
    if ttl is None:
        return -1
    return max(0, int(ttl * 1000))


def _reply_error(message: str) -> Exception:
    if message.startswith("NOTINT "):
        return StateSerializationError(message[7:])
    return StateBackendError(message)


class RedisStateStore(StateStore):
    """:class:`StateStore` on a Redis server (standalone; not Cluster).

    ``url``: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS)
    or ``unix:///path.sock?db=N``. ``prefix`` namespaces every key so tests
    and deployments can share a server. ``pool_size`` is the number of
    multiplexed connections (one is enough: commands are pipelined on it;
    more only helps when huge replies would hold up small ones).
    ``socket_timeout`` bounds the wait for a reply (the connection is
    dropped and calls fail with :class:`~acteon.StateConnectionError`).
    ``auto_pipeline=False`` flushes every command immediately (one write
    per command; for comparison only). Deferred lock releases are sent with
    the next batch or after ``deferred_flush_delay`` seconds.

    Bound to one asyncio event loop at a time; used from another loop it
    reconnects. A ``clock`` is accepted for interface parity but Redis
    server time drives every TTL.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        *,
        prefix: str = "acteon",
        pool_size: int = 1,
        clock: Clock | None = None,
        socket_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        auto_pipeline: bool = True,
        deferred_flush_delay: float | None = 0.002,
        scan_count: int = 1000,
        tls_insecure: bool = False,
    ) -> None:
        require_hiredis("RedisStateStore")
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._init_clock(clock)
        self.prefix = prefix
        self._p = f"{prefix}:" if prefix else ""
        self._timeout_index = f"{self._p}timeout_index"
        self._chain_index = f"{self._p}chain_ready_index"
        self._lock_prefix = f"{self._p}lock:"
        self._scan_count = scan_count
        self.auto_pipeline = auto_pipeline
        self._clients = [
            RedisClient(
                url,
                scripts=SCRIPTS,
                socket_timeout=socket_timeout,
                connect_timeout=connect_timeout,
                deferred_delay=deferred_flush_delay if auto_pipeline else 0.0,
                tls_insecure=tls_insecure,
                client_name="acteon-state",
                connection_error=StateConnectionError,
                backend_error=StateBackendError,
                reply_error=_reply_error,
            )
            for _ in range(pool_size)
        ]
        self._client = self._clients[0]
        self._next = 0
        self._lock: RedisDistributedLock | None = None
        if not auto_pipeline:
            for client in self._clients:
                client.immediate = True

    @property
    def url(self) -> str:
        """The server URL (password masked)."""
        return self._client.url

    @property
    def client(self) -> RedisClient:
        """The first underlying client (its ``stats`` count batches and commands)."""
        return self._client

    def _pick(self) -> RedisClient:
        clients = self._clients
        if len(clients) == 1:
            return self._client
        self._next = (self._next + 1) % len(clients)
        return clients[self._next]

    def __repr__(self) -> str:
        return f"RedisStateStore({self.url!r}, prefix={self.prefix!r})"

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        for client in self._clients:
            await client.connect()

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def flush(self) -> None:
        """Send queued deferred commands (lock releases) and wait for them."""
        for client in self._clients:
            await client.drain()

    def distributed_lock(self) -> RedisDistributedLock:
        if self._lock is None:
            self._lock = RedisDistributedLock(self)
        return self._lock

    # ---------------------------------------------------------------- key/value

    def _keys(self, key: KeyLike) -> tuple[str, str]:
        c = key if isinstance(key, str) else key.canonical
        s = self._p + c
        return s + ":h", s

    async def check_and_set(self, key: KeyLike, value: str, ttl: float | None = None) -> bool:
        h, s = self._keys(key)
        return bool(await self._pick().run(_CHECK_AND_SET, h, s, value, _ttl_ms(ttl)) == 1)

    async def get(self, key: KeyLike) -> str | None:
        h, s = self._keys(key)
        reply: str | None = await self._pick().run(_GET, h, s)
        return reply

    async def get_versioned(self, key: KeyLike) -> tuple[str, int] | None:
        h, s = self._keys(key)
        reply = await self._pick().run(_GET_VERSIONED, h, s)
        if reply is None:
            return None
        return reply[0], int(reply[1])

    async def set(self, key: KeyLike, value: str, ttl: float | None = None) -> None:
        h, s = self._keys(key)
        await self._pick().run(_SET, h, s, value, _ttl_ms(ttl))

    async def delete(self, key: KeyLike) -> bool:
        h, s = self._keys(key)
        return bool(await self._pick().run(_DELETE, h, s) == 1)

    async def increment(self, key: KeyLike, delta: int, ttl: float | None = None) -> int:
        h, s = self._keys(key)
        return int(await self._pick().run(_INCREMENT, h, s, int(delta), _ttl_ms(ttl)))

    async def increment_window(self, key: KeyLike, delta: int, expires_at_ms: int) -> int:
        h, s = self._keys(key)
        return int(await self._pick().run(_INCREMENT_WINDOW, h, s, int(delta), int(expires_at_ms)))

    async def compare_and_swap(
        self, key: KeyLike, expected_version: int, new_value: str, ttl: float | None = None
    ) -> CasResult:
        h, s = self._keys(key)
        reply = await self._pick().run(
            _COMPARE_AND_SWAP, h, s, int(expected_version), new_value, _ttl_ms(ttl)
        )
        if reply[0] == 1:
            return CasResult(True)
        if len(reply) < 3:
            return CasResult(False, None, 0)
        return CasResult(False, reply[2], int(reply[1]))

    # ---------------------------------------------------------------- scans

    async def _scan(self, pattern: str, accept: Any) -> list[tuple[str, str]]:
        p = self._p
        plen = len(p)
        found: dict[str, tuple[bool, str]] = {}
        cursor = "0"
        client = self._client
        while True:
            reply = await client.run(_SCAN_PAGE, cursor, pattern, self._scan_count, self._lock_prefix)
            cursor = reply[0]
            for i in range(1, len(reply), 3):
                redis_key, form, value = reply[i], reply[i + 1], reply[i + 2]
                if not redis_key.startswith(p):
                    continue
                is_hash = form == "h"
                if is_hash:
                    if not redis_key.endswith(":h"):
                        continue
                    canonical_key = redis_key[plen:-2]
                else:
                    canonical_key = redis_key[plen:]
                if not accept(canonical_key):
                    continue
                seen = found.get(canonical_key)
                if seen is None or (is_hash and not seen[0]):
                    found[canonical_key] = (is_hash, value)
            if cursor == "0":
                break
        return [(k, v) for k, (_, v) in found.items()]

    async def scan_keys(
        self, namespace: str, tenant: str, kind: str, prefix: str | None = None
    ) -> list[tuple[str, str]]:
        head = f"{namespace}:{tenant}:{kind}:{prefix or ''}"
        pattern = _glob_escape(self._p + head) + "*"

        def accept(canonical_key: str) -> bool:
            return canonical_key.startswith(head) and len(canonical_key.split(":", 3)) == 4

        return await self._scan(pattern, accept)

    async def scan_keys_by_kind(self, kind: str) -> list[tuple[str, str]]:
        kind = str(kind)
        pattern = _glob_escape(self._p) + "*:*:" + _glob_escape(kind) + ":*"

        def accept(canonical_key: str) -> bool:
            parts = canonical_key.split(":", 3)
            return len(parts) == 4 and parts[2] == kind

        return await self._scan(pattern, accept)

    # ---------------------------------------------------------------- indexes

    @staticmethod
    def _canonical(key: KeyLike) -> str:
        return key if isinstance(key, str) else key.canonical

    async def index_timeout(self, key: KeyLike, expires_at_ms: int) -> None:
        await self._pick().call("ZADD", self._timeout_index, int(expires_at_ms), self._canonical(key))

    async def remove_timeout_index(self, key: KeyLike) -> None:
        await self._pick().call("ZREM", self._timeout_index, self._canonical(key))

    async def get_expired_timeouts(self, now_ms: int) -> list[str]:
        reply: list[str] = await self._client.call("ZRANGEBYSCORE", self._timeout_index, "-inf", int(now_ms))
        return reply

    async def index_chain_ready(self, key: KeyLike, ready_at_ms: int) -> None:
        await self._pick().call("ZADD", self._chain_index, int(ready_at_ms), self._canonical(key))

    async def remove_chain_ready_index(self, key: KeyLike) -> None:
        await self._pick().call("ZREM", self._chain_index, self._canonical(key))

    async def get_ready_chains(self, now_ms: int) -> list[str]:
        reply: list[str] = await self._client.call("ZRANGEBYSCORE", self._chain_index, "-inf", int(now_ms))
        return reply

    # ---------------------------------------------------------------- fast paths

    async def claim_and_check_and_set(
        self, lock_name: str, lock_ttl: float, key: KeyLike, value: str, ttl: float | None = None
    ) -> tuple[LockGuard | None, bool]:
        """Lock ``SET NX PX`` and :meth:`check_and_set` in one script (one round trip)."""
        h, s = self._keys(key)
        owner = _new_owner()
        lock_key = self._lock_prefix + lock_name
        client = self._pick()
        try:
            reply = await client.run(
                _CLAIM_CHECK_AND_SET, lock_key, h, s, owner, _lock_ms(lock_ttl), value, _ttl_ms(ttl)
            )
        except asyncio.CancelledError:
            client.run_deferred_nowait(_LOCK_RELEASE, lock_key, owner)  # the lock may be ours
            raise
        if reply[0] == 0:
            return None, False
        return _RedisGuard(self.distributed_lock(), client, lock_name, lock_key, owner), reply[1] == 1

    async def claim_and_increment_window(
        self, lock_name: str, lock_ttl: float, key: KeyLike, delta: int, expires_at_ms: int
    ) -> tuple[LockGuard | None, int]:
        """Lock ``SET NX PX`` and :meth:`increment_window` in one script (one round trip)."""
        h, s = self._keys(key)
        owner = _new_owner()
        lock_key = self._lock_prefix + lock_name
        client = self._pick()
        args = (lock_key, h, s, owner, _lock_ms(lock_ttl), int(delta), int(expires_at_ms))
        try:
            reply = await client.run(_CLAIM_INCREMENT_WINDOW, *args)
        except asyncio.CancelledError:
            client.run_deferred_nowait(_LOCK_RELEASE, lock_key, owner)  # the lock may be ours
            raise
        if reply[0] == 0:
            return None, 0
        guard = _RedisGuard(self.distributed_lock(), client, lock_name, lock_key, owner)
        return guard, int(reply[1])


def _lock_ms(ttl: float) -> int:
    # SET ... PX needs a positive integer; a sub-millisecond lease rounds up to 1 ms.
    return max(1, int(ttl * 1000))


class _RedisGuard(LockGuard):
    __slots__ = ("_client", "_key", "_lock", "name", "owner")

    def __init__(
        self, lock: RedisDistributedLock, client: RedisClient, name: str, key: str, owner: str
    ) -> None:
        self._lock = lock
        self._client = client
        self.name = name
        self._key = key
        self.owner = owner

    async def release(self) -> bool:
        return bool(await self._client.run(_LOCK_RELEASE, self._key, self.owner) == 1)

    async def release_deferred(self) -> None:
        """Queue the owner-checked release; it rides with the next batch (or close)."""
        if not self._client.run_deferred_nowait(_LOCK_RELEASE, self._key, self.owner):
            await self._client.run_deferred(_LOCK_RELEASE, self._key, self.owner)

    async def extend(self, ttl: float) -> None:
        if await self._client.run(_LOCK_EXTEND, self._key, self.owner, _lock_ms(ttl)) != 1:
            raise LockExpired(f"lock {self.name} is no longer held by this owner")

    async def is_held(self) -> bool:
        return bool(await self._client.call("GET", self._key) == self.owner)

    def __repr__(self) -> str:
        return f"<RedisLockGuard {self.name!r}>"


class RedisDistributedLock(DistributedLock):
    """Owner-fenced locks at ``{prefix}:lock:{name}`` (``SET NX PX`` + Lua release/extend).

    Mutual exclusion holds on a single Redis server while the critical
    section is shorter than the TTL; it may be violated across a
    Sentinel/replica failover (asynchronous replication). ``acquire`` polls
    in real time (Redis expires the lock by its own clock).
    """

    def __init__(self, store: RedisStateStore) -> None:
        self._init_clock(store.clock if store._clock_explicit else None)
        self._store = store

    async def try_acquire(self, name: str, ttl: float) -> LockGuard | None:
        key = self._store._lock_prefix + name
        owner = _new_owner()
        client = self._store._pick()
        try:
            reply = await client.call("SET", key, owner, "NX", "PX", _lock_ms(ttl))
        except asyncio.CancelledError:
            client.run_deferred_nowait(_LOCK_RELEASE, key, owner)  # the lock may be ours
            raise
        if reply is None:
            return None
        return _RedisGuard(self, client, name, key, owner)

    async def acquire(self, name: str, ttl: float, timeout: float) -> LockGuard:
        """Poll until ``timeout`` seconds of real time have passed (always tries once)."""
        deadline = time.monotonic() + timeout
        while True:
            guard = await self.try_acquire(name, ttl)
            if guard is not None:
                return guard
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StateTimeout(timeout)
            await asyncio.sleep(min(self.poll_interval * (0.5 + random.random()), remaining))
