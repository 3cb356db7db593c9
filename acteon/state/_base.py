"""The state-store and lock contracts (state-audit.md A2-A5).

Every backend implements :class:`StateStore` and :class:`DistributedLock`;
``acteon.testing.StateStoreContract`` checks them. Keys are :class:`StateKey`
objects or canonical strings. All times come from the injected clock.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from acteon._clock import SYSTEM_CLOCK, Clock
from acteon._exceptions import StateTimeout
from acteon.state._keys import KeyLike


@dataclass(frozen=True, slots=True)
class CasResult:
    """Result of :meth:`StateStore.compare_and_swap`: ``ok`` or the current value/version."""

    ok: bool
    current_value: str | None = None
    current_version: int = 0


class _ClockHolder:
    """Shared by stores and locks: a clock the gateway may replace unless one was given."""

    _clock: Clock
    _clock_explicit: bool

    def _init_clock(self, clock: Clock | None) -> None:
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._clock_explicit = clock is not None

    @property
    def clock(self) -> Clock:
        return self._clock

    def use_clock(self, clock: Clock) -> None:
        """Adopt the gateway's clock unless this object was built with its own."""
        if not self._clock_explicit:
            self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)


class StateStore(_ClockHolder, ABC):
    """Shared memory of the gateway: dedup markers, counters, versioned values, indexes.

    Every method is atomic with respect to every other operation on the same key,
    across processes for shared backends. An entry whose expiry is ``<= now`` is
    indistinguishable from an absent one. TTLs are in seconds (floats allowed).
    """

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open connections / create schema. Idempotent."""

    async def aclose(self) -> None:
        """Release resources. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @abstractmethod
    def distributed_lock(self) -> DistributedLock:
        """The lock implementation that shares this store's backend."""

    # ---------------------------------------------------------------- key/value

    @abstractmethod
    async def check_and_set(self, key: KeyLike, value: str, ttl: float | None = None) -> bool:
        """Create the entry if no live one exists (version 1); ``True`` if created."""

    @abstractmethod
    async def get(self, key: KeyLike) -> str | None:
        """Value of the live entry, or ``None``."""

    @abstractmethod
    async def get_versioned(self, key: KeyLike) -> tuple[str, int] | None:
        """``(value, version)`` of the live entry, or ``None``."""

    @abstractmethod
    async def set(self, key: KeyLike, value: str, ttl: float | None = None) -> None:
        """Upsert; version 1 when absent else +1; expiry replaced (``None`` = permanent)."""

    @abstractmethod
    async def delete(self, key: KeyLike) -> bool:
        """Remove; ``True`` only if a live entry existed."""

    @abstractmethod
    async def increment(self, key: KeyLike, delta: int, ttl: float | None = None) -> int:
        """Add ``delta`` (absent = 0) and return the new value.

        With ``ttl`` the expiry becomes ``now + ttl`` on every call (sliding);
        without it the current expiry is kept. A non-integer value raises
        :class:`~acteon.StateSerializationError` / backend error and is left unchanged.
        """

    @abstractmethod
    async def increment_window(self, key: KeyLike, delta: int, expires_at_ms: int) -> int:
        """Add ``delta`` to a counter that lives until the absolute ``expires_at_ms``.

        The expiry is set only when this call creates the counter (an absent or
        expired key), so a fixed window ends at its boundary however often it is
        hit (DECISIONS D7). One atomic operation (one Redis round trip).
        """

    @abstractmethod
    async def compare_and_swap(
        self, key: KeyLike, expected_version: int, new_value: str, ttl: float | None = None
    ) -> CasResult:
        """Write if the live version equals ``expected_version`` (``ttl=None`` keeps expiry).

        An absent key is ``CasResult(False, None, 0)`` and stays absent.
        """

    @abstractmethod
    async def scan_keys(
        self, namespace: str, tenant: str, kind: str, prefix: str | None = None
    ) -> list[tuple[str, str]]:
        """Live ``(canonical_key, value)`` pairs under ``ns:tenant:kind:`` + literal prefix."""

    @abstractmethod
    async def scan_keys_by_kind(self, kind: str) -> list[tuple[str, str]]:
        """Live pairs in any namespace/tenant whose third segment equals ``kind``."""

    # ---------------------------------------------------------------- indexes

    @abstractmethod
    async def index_timeout(self, key: KeyLike, expires_at_ms: int) -> None:
        """Upsert ``key -> expires_at_ms`` in the timeout index (one entry per key)."""

    @abstractmethod
    async def remove_timeout_index(self, key: KeyLike) -> None:
        """Remove the index entry; absent is a no-op."""

    @abstractmethod
    async def get_expired_timeouts(self, now_ms: int) -> list[str]:
        """Canonical keys with ``expires_at_ms <= now_ms``, ordered by (ms, key). Not removed."""

    @abstractmethod
    async def index_chain_ready(self, key: KeyLike, ready_at_ms: int) -> None:
        """Upsert in the chain-ready index."""

    @abstractmethod
    async def remove_chain_ready_index(self, key: KeyLike) -> None:
        """Remove from the chain-ready index."""

    @abstractmethod
    async def get_ready_chains(self, now_ms: int) -> list[str]:
        """Canonical keys with ``ready_at_ms <= now_ms``, ordered by (ms, key)."""

    # ---------------------------------------------------------------- dispatch fast paths
    #
    # The gateway takes a per-action dispatch lock and then usually makes one
    # state change (a dedup marker or a throttle counter). Backends with a
    # network hop (Redis) override these to do both in one round trip; the
    # defaults below are correct for every backend.

    async def claim_and_check_and_set(
        self, lock_name: str, lock_ttl: float, key: KeyLike, value: str, ttl: float | None = None
    ) -> tuple[LockGuard | None, bool]:
        """Try the lock once; if taken, :meth:`check_and_set`. ``(None, False)`` if the lock is busy."""
        guard = await self.distributed_lock().try_acquire(lock_name, lock_ttl)
        if guard is None:
            return None, False
        try:
            created = await self.check_and_set(key, value, ttl)
        except BaseException:
            await guard.release()
            raise
        return guard, created

    async def claim_and_increment_window(
        self, lock_name: str, lock_ttl: float, key: KeyLike, delta: int, expires_at_ms: int
    ) -> tuple[LockGuard | None, int]:
        """Try the lock once; if taken, :meth:`increment_window`. ``(None, 0)`` if the lock is busy."""
        guard = await self.distributed_lock().try_acquire(lock_name, lock_ttl)
        if guard is None:
            return None, 0
        try:
            count = await self.increment_window(key, delta, expires_at_ms)
        except BaseException:
            await guard.release()
            raise
        return guard, count

    # ---------------------------------------------------------------- maintenance

    async def sweep_expired(self) -> int:
        """Physically remove expired entries; returns how many. Backends that expire
        on their own (Redis) return 0."""
        return 0


class LockGuard(ABC):
    """A held lock. Release it with :meth:`release` or ``async with``."""

    name: str

    @abstractmethod
    async def release(self) -> bool:
        """Owner-checked release; ``False`` if this guard no longer held the lock."""

    async def release_deferred(self) -> None:
        """Release without waiting for the backend's reply where the backend can
        (Redis sends it with the next batch of commands, and on close). The lock
        is still released on every path; only the wait is saved. Default: :meth:`release`."""
        await self.release()

    @abstractmethod
    async def extend(self, ttl: float) -> None:
        """Set expiry to ``now + ttl`` if still held, else raise :class:`~acteon.LockExpired`."""

    @abstractmethod
    async def is_held(self) -> bool:
        """Owner matches and not expired."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class DistributedLock(_ClockHolder, ABC):
    """Named, owner-fenced locks with a TTL (state-audit.md A4)."""

    poll_interval: float = 0.05

    @abstractmethod
    async def try_acquire(self, name: str, ttl: float) -> LockGuard | None:
        """One attempt; a fresh owner token per attempt; expired locks are taken over."""

    async def acquire(self, name: str, ttl: float, timeout: float) -> LockGuard:
        """Poll :meth:`try_acquire` until ``timeout`` (clock time); raises :class:`~acteon.StateTimeout`.

        Always tries at least once, even with ``timeout=0``.
        """
        deadline = self._clock.time() + timeout
        while True:
            guard = await self.try_acquire(name, ttl)
            if guard is not None:
                return guard
            remaining = deadline - self._clock.time()
            if remaining <= 0:
                raise StateTimeout(timeout)
            # A little jitter keeps contending processes from polling in lockstep.
            await self._clock.sleep(min(self.poll_interval * (0.5 + random.random()), remaining))

    async def sweep_expired(self) -> int:
        """Remove expired locks; returns how many (0 where the backend expires them)."""
        return 0
