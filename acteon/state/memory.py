"""In-process state store and lock: dictionaries behind one ``threading.Lock``.

For tests, embedding and single-process deployments. Expiry is lazy (reads and
conditional writes ignore expired entries) plus :meth:`sweep_expired`.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass

from acteon._clock import Clock
from acteon._exceptions import LockExpired, StateSerializationError
from acteon.state._base import CasResult, DistributedLock, LockGuard, StateStore
from acteon.state._keys import KeyLike, canonical

_OWNERS = itertools.count(1)
_PID = os.getpid()
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


@dataclass(slots=True)
class _Entry:
    value: str
    version: int
    expires_at: int | None  # epoch ms


def _expiry(now_ms: int, ttl: float | None) -> int | None:
    return None if ttl is None else now_ms + int(ttl * 1000)


def _parse_counter(value: str) -> int:
    text = value.strip()
    try:
        if text != value or not text or "_" in text:
            raise ValueError(value)
        number = int(text, 10)
    except ValueError:
        raise StateSerializationError(f"counter value is not an integer: {value!r}") from None
    return number


class MemoryStateStore(StateStore):
    """Dictionary-backed :class:`StateStore` (single process)."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._init_clock(clock)
        self._data: dict[str, _Entry] = {}
        self._timeouts: dict[str, int] = {}
        self._chain_ready: dict[str, int] = {}
        self._mutex = threading.Lock()
        self._lock: MemoryDistributedLock | None = None

    def distributed_lock(self) -> MemoryDistributedLock:
        if self._lock is None:
            self._lock = MemoryDistributedLock(clock=self._clock if self._clock_explicit else None)
        return self._lock

    def use_clock(self, clock: Clock) -> None:
        super().use_clock(clock)
        if self._lock is not None:
            self._lock.use_clock(clock)

    def _live(self, key: str, now_ms: int) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= now_ms:
            del self._data[key]
            return None
        return entry

    async def check_and_set(self, key: KeyLike, value: str, ttl: float | None = None) -> bool:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            if self._live(k, now) is not None:
                return False
            self._data[k] = _Entry(value, 1, _expiry(now, ttl))
            return True

    async def get(self, key: KeyLike) -> str | None:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry = self._live(k, now)
            return None if entry is None else entry.value

    async def get_versioned(self, key: KeyLike) -> tuple[str, int] | None:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry = self._live(k, now)
            return None if entry is None else (entry.value, entry.version)

    async def set(self, key: KeyLike, value: str, ttl: float | None = None) -> None:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry = self._live(k, now)
            version = 1 if entry is None else entry.version + 1
            self._data[k] = _Entry(value, version, _expiry(now, ttl))

    async def delete(self, key: KeyLike) -> bool:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry = self._live(k, now)
            if entry is None:
                return False
            del self._data[k]
            return True

    def _add(self, k: str, delta: int, now: int) -> tuple[_Entry | None, int]:
        entry = self._live(k, now)
        current = 0 if entry is None else _parse_counter(entry.value)
        new = current + delta
        if not _I64_MIN <= new <= _I64_MAX:
            raise StateSerializationError(f"counter overflow: {current} + {delta}")
        return entry, new

    async def increment(self, key: KeyLike, delta: int, ttl: float | None = None) -> int:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry, new = self._add(k, delta, now)
            if entry is None:
                self._data[k] = _Entry(str(new), 1, _expiry(now, ttl))
            else:
                entry.value = str(new)
                entry.version += 1
                if ttl is not None:
                    entry.expires_at = _expiry(now, ttl)
            return new

    async def increment_window(self, key: KeyLike, delta: int, expires_at_ms: int) -> int:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry, new = self._add(k, delta, now)
            if entry is None:
                self._data[k] = _Entry(str(new), 1, expires_at_ms)
            else:
                entry.value = str(new)
                entry.version += 1
            return new

    async def compare_and_swap(
        self, key: KeyLike, expected_version: int, new_value: str, ttl: float | None = None
    ) -> CasResult:
        k = canonical(key)
        now = self._now_ms()
        with self._mutex:
            entry = self._live(k, now)
            if entry is None:
                return CasResult(False, None, 0)
            if entry.version != expected_version:
                return CasResult(False, entry.value, entry.version)
            entry.value = new_value
            entry.version += 1
            if ttl is not None:
                entry.expires_at = _expiry(now, ttl)
            return CasResult(True)

    def _scan(self, predicate_prefix: str | None, kind: str | None) -> list[tuple[str, str]]:
        now = self._now_ms()
        out: list[tuple[str, str]] = []
        with self._mutex:
            for k, entry in list(self._data.items()):
                if entry.expires_at is not None and entry.expires_at <= now:
                    continue
                if predicate_prefix is not None and not k.startswith(predicate_prefix):
                    continue
                if kind is not None:
                    parts = k.split(":", 3)
                    if len(parts) < 4 or parts[2] != kind:
                        continue
                out.append((k, entry.value))
        return out

    async def scan_keys(
        self, namespace: str, tenant: str, kind: str, prefix: str | None = None
    ) -> list[tuple[str, str]]:
        return self._scan(f"{namespace}:{tenant}:{kind}:{prefix or ''}", None)

    async def scan_keys_by_kind(self, kind: str) -> list[tuple[str, str]]:
        return self._scan(None, str(kind))

    async def index_timeout(self, key: KeyLike, expires_at_ms: int) -> None:
        with self._mutex:
            self._timeouts[canonical(key)] = int(expires_at_ms)

    async def remove_timeout_index(self, key: KeyLike) -> None:
        with self._mutex:
            self._timeouts.pop(canonical(key), None)

    async def get_expired_timeouts(self, now_ms: int) -> list[str]:
        with self._mutex:
            due = [(ms, k) for k, ms in self._timeouts.items() if ms <= now_ms]
        return [k for _, k in sorted(due)]

    async def index_chain_ready(self, key: KeyLike, ready_at_ms: int) -> None:
        with self._mutex:
            self._chain_ready[canonical(key)] = int(ready_at_ms)

    async def remove_chain_ready_index(self, key: KeyLike) -> None:
        with self._mutex:
            self._chain_ready.pop(canonical(key), None)

    async def get_ready_chains(self, now_ms: int) -> list[str]:
        with self._mutex:
            due = [(ms, k) for k, ms in self._chain_ready.items() if ms <= now_ms]
        return [k for _, k in sorted(due)]

    async def sweep_expired(self) -> int:
        now = self._now_ms()
        with self._mutex:
            dead = [k for k, e in self._data.items() if e.expires_at is not None and e.expires_at <= now]
            for k in dead:
                del self._data[k]
        return len(dead)


@dataclass(slots=True)
class _Held:
    owner: str
    expires_at: int


class _MemoryGuard(LockGuard):
    __slots__ = ("_lock", "name", "owner")

    def __init__(self, lock: MemoryDistributedLock, name: str, owner: str) -> None:
        self._lock = lock
        self.name = name
        self.owner = owner

    async def release(self) -> bool:
        return self._lock._release(self.name, self.owner)

    async def extend(self, ttl: float) -> None:
        lock = self._lock
        now = lock._now_ms()
        with lock._mutex:
            held = lock._locks.get(self.name)
            if held is None or held.owner != self.owner or held.expires_at <= now:
                raise LockExpired(self.name)
            held.expires_at = now + int(ttl * 1000)

    async def is_held(self) -> bool:
        lock = self._lock
        now = lock._now_ms()
        with lock._mutex:
            held = lock._locks.get(self.name)
            return held is not None and held.owner == self.owner and held.expires_at > now


class MemoryDistributedLock(DistributedLock):
    """In-process named locks with TTL and owner fencing."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._init_clock(clock)
        self._locks: dict[str, _Held] = {}
        self._mutex = threading.Lock()

    async def try_acquire(self, name: str, ttl: float) -> LockGuard | None:
        now = self._now_ms()
        # Owners only need to be unique within this process's lock table.
        owner = f"{_PID}-{next(_OWNERS)}"
        with self._mutex:
            held = self._locks.get(name)
            if held is not None and held.expires_at > now:
                return None
            self._locks[name] = _Held(owner, now + int(ttl * 1000))
        return _MemoryGuard(self, name, owner)

    def _release(self, name: str, owner: str) -> bool:
        with self._mutex:
            held = self._locks.get(name)
            if held is None or held.owner != owner:
                return False
            del self._locks[name]
            return True

    async def sweep_expired(self) -> int:
        now = self._now_ms()
        with self._mutex:
            dead = [n for n, h in self._locks.items() if h.expires_at <= now]
            for n in dead:
                del self._locks[n]
        return len(dead)
