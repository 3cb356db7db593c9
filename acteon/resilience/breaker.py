"""Per-provider circuit breakers whose state lives in the state store (core-pipeline.md §8).

A breaker is Closed (calls go through), Open (calls are refused until the
recovery timeout has passed since the last failure) or HalfOpen (one probe at a
time; ``success_threshold`` good probes close it, any bad one re-opens it).
Only retryable failures count; a success in Closed clears the failure streak.

The state is one JSON value at ``_system:_global:circuit_breaker:{provider}``
(§8.2), so every gateway sharing the store shares the breaker. Each change is a
read followed by a compare-and-swap on that key, retried on conflict: unlike
upstream's try-lock, a contended update is never silently dropped, and exactly
one caller across all processes wins each transition (one half-open probe).

The hot path: a breaker remembers, for ``state_cache_seconds``, that it last saw
Closed with no failures. While that holds, the gateway skips the permit and the
success record entirely (both would be no-ops), so a healthy provider costs no
store round trip. A change made by another process (a trip, failures it
recorded) becomes visible here at the latest when the cache runs out, or at
once on this process's next failure, which always goes to the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from acteon._clock import SYSTEM_CLOCK, Clock
from acteon._exceptions import ConfigurationError, StateError, UsageError
from acteon.state._base import StateStore

_log = logging.getLogger("acteon.resilience")

PROBE_TIMEOUT_MS = 30_000
"""A half-open probe that has not reported back after this long no longer blocks a new one."""
_CAS_ATTEMPTS = 16
_R = TypeVar("_R")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(NamedTuple):
    """A state change observed by one operation, e.g. ``Transition(OPEN, HALF_OPEN)``."""

    from_state: CircuitState
    to_state: CircuitState

    def __str__(self) -> str:
        return f"{self.from_state} → {self.to_state}"


class CircuitBreakerNotFound(UsageError, LookupError):
    """No breaker is configured for this provider (``circuit breaker not found: <p>``)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        super().__init__(f"circuit breaker not found: {provider}")


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """Thresholds of one breaker (§8.1). ``fallback_provider`` is tried when it is open."""

    failure_threshold: int = 5
    success_threshold: int = 2
    recovery_timeout_seconds: float = 60.0
    fallback_provider: str | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the bad field."""
        if self.failure_threshold < 1:
            raise ConfigurationError("failure_threshold must be >= 1")
        if self.success_threshold < 1:
            raise ConfigurationError("success_threshold must be >= 1")
        if self.recovery_timeout_seconds < 0:
            raise ConfigurationError("recovery_timeout_seconds must be >= 0")

    @property
    def recovery_timeout_ms(self) -> int:
        return int(self.recovery_timeout_seconds * 1000)


@dataclass(slots=True)
class CircuitData:
    """The persisted state (§8.2); ``to_json`` gives the exact stored JSON."""

    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_failure_time_ms: int | None = None
    probe_started_at_ms: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state.value,
                "consecutive_failures": self.consecutive_failures,
                "consecutive_successes": self.consecutive_successes,
                "last_failure_time_ms": self.last_failure_time_ms,
                "probe_started_at_ms": self.probe_started_at_ms,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> CircuitData:
        """Parse a stored value; the two ``_ms`` fields may be missing (null).

        Raises ``ValueError`` for anything else that is malformed.
        """
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("circuit breaker state is not a JSON object")

        def opt_int(name: str) -> int | None:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} is not an integer")
            return value

        def count(name: str) -> int:
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} is not a non-negative integer")
            return value

        return cls(
            CircuitState(str(raw.get("state"))),
            count("consecutive_failures"),
            count("consecutive_successes"),
            opt_int("last_failure_time_ms"),
            opt_int("probe_started_at_ms"),
        )


def circuit_key(provider: str) -> str:
    """The state-store key of a provider's breaker."""
    return f"_system:_global:circuit_breaker:{provider}"


# An operation's pure step: (current data, now ms) -> (new data or None for "no write", result).
_Step = Callable[[CircuitData, int], tuple[CircuitData | None, _R]]


class CircuitBreaker:
    """One provider's breaker over a shared state store.

    ``state_cache_seconds`` bounds how long this object trusts its last view of
    "Closed, no failures" (see the module docs); ``0`` reads the store on every
    call.
    """

    __slots__ = ("_cache_seconds", "_clock", "_key", "_store", "cached_from", "cached_until", "config", "provider")

    def __init__(
        self,
        provider: str,
        config: CircuitBreakerConfig | None = None,
        *,
        store: StateStore,
        clock: Clock | None = None,
        state_cache_seconds: float = 1.0,
    ) -> None:
        self.provider = provider
        self.config = config or CircuitBreakerConfig()
        self.config.validate()
        self._store = store
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._key = circuit_key(provider)
        self._cache_seconds = float(state_cache_seconds)
        # Clock-time interval in which Closed-with-no-failures is assumed without a store read.
        # Both bounds are checked so a clock that jumps back cannot stretch the interval.
        self.cached_from = 0.0
        self.cached_until = 0.0

    @property
    def key(self) -> str:
        return self._key

    def closed_cached(self, now: float) -> bool:
        """True while the cached "Closed, no failures" view may be used at clock time ``now``."""
        return self.cached_from <= now < self.cached_until

    def forget(self) -> None:
        """Drop the cached view; the next call reads the store."""
        self.cached_until = 0.0

    # ------------------------------------------------------------------ store access

    def _observe(self, data: CircuitData) -> None:
        if data.state is CircuitState.CLOSED and data.consecutive_failures == 0 and self._cache_seconds > 0:
            now = self._clock.time()
            self.cached_from = now
            self.cached_until = now + self._cache_seconds
        else:
            self.cached_until = 0.0

    async def _read(self) -> tuple[CircuitData, int | None]:
        """Current data and its version (``None`` when absent). Unreadable → default (fail open)."""
        try:
            current = await self._store.get_versioned(self._key)
        except StateError as exc:
            _log.warning("circuit breaker %s: cannot read state (%s); assuming closed", self.provider, exc)
            return CircuitData(), None
        if current is None:
            return CircuitData(), None
        try:
            return CircuitData.from_json(current[0]), current[1]
        except ValueError as exc:
            _log.warning("circuit breaker %s: unreadable state %r (%s); assuming closed",
                         self.provider, current[0], exc)
            return CircuitData(), current[1]

    async def _apply(self, step: _Step[_R], contended: Callable[[CircuitData], _R]) -> _R:
        """Run ``step`` on the stored data and write its result with a compare-and-swap.

        A lost race re-reads and re-runs the step, so concurrent updates from any
        number of processes are serialised. After ``_CAS_ATTEMPTS`` lost races the
        update gives up and ``contended(data)`` answers from the last read.
        """
        data = CircuitData()
        for _ in range(_CAS_ATTEMPTS):
            data, version = await self._read()
            new, result = step(replace(data), int(self._clock.time() * 1000))
            if new is None:
                self._observe(data)
                return result
            body = new.to_json()
            try:
                if version is None:
                    written = await self._store.check_and_set(self._key, body)
                else:
                    written = (await self._store.compare_and_swap(self._key, version, body)).ok
            except StateError as exc:
                # As upstream: a failed write is logged and the decision stands.
                _log.warning("circuit breaker %s: cannot save state (%s)", self.provider, exc)
                self.forget()
                return result
            if written:
                self._observe(new)
                return result
        _log.info("circuit breaker %s: update skipped after %d conflicting writers", self.provider, _CAS_ATTEMPTS)
        self.forget()
        return contended(data)

    # ------------------------------------------------------------------ operations (§8.3)

    async def try_acquire_permit(self) -> tuple[CircuitState, Transition | None]:
        """May a call go through? ``(CLOSED|HALF_OPEN, ...)`` yes; ``(OPEN, None)`` no.

        Open past its recovery timeout turns HalfOpen and admits the caller as the
        probe; HalfOpen admits a new probe only when none is active (or the active
        one is older than 30 s).
        """
        cfg = self.config

        def step(d: CircuitData, now: int) -> tuple[CircuitData | None, tuple[CircuitState, Transition | None]]:
            if d.state is CircuitState.OPEN:
                last = d.last_failure_time_ms
                if last is not None and max(now - last, 0) < cfg.recovery_timeout_ms:
                    return None, (CircuitState.OPEN, None)
                d.state = CircuitState.HALF_OPEN
                d.consecutive_successes = 0
                d.probe_started_at_ms = now
                return d, (CircuitState.HALF_OPEN, Transition(CircuitState.OPEN, CircuitState.HALF_OPEN))
            if d.state is CircuitState.HALF_OPEN:
                if d.probe_started_at_ms is not None and now - d.probe_started_at_ms < PROBE_TIMEOUT_MS:
                    return None, (CircuitState.OPEN, None)
                d.probe_started_at_ms = now
                return d, (CircuitState.HALF_OPEN, None)
            return None, (CircuitState.CLOSED, None)

        def contended(d: CircuitData) -> tuple[CircuitState, Transition | None]:
            return (CircuitState.CLOSED if d.state is CircuitState.CLOSED else CircuitState.OPEN), None

        return await self._apply(step, contended)

    async def record_success(self) -> Transition | None:
        """A call succeeded: count a good probe, or clear the failure streak."""
        threshold = self.config.success_threshold

        def step(d: CircuitData, now: int) -> tuple[CircuitData | None, Transition | None]:
            if d.state is CircuitState.HALF_OPEN:
                d.consecutive_successes += 1
                d.probe_started_at_ms = None
                if d.consecutive_successes >= threshold:
                    d.state = CircuitState.CLOSED
                    d.consecutive_failures = d.consecutive_successes = 0
                    return d, Transition(CircuitState.HALF_OPEN, CircuitState.CLOSED)
                return d, None
            if d.state is CircuitState.CLOSED and d.consecutive_failures > 0:
                d.consecutive_failures = 0
                return d, None
            return None, None

        return await self._apply(step, lambda d: None)

    async def record_failure(self) -> Transition | None:
        """A call failed with a retryable error: count it, trip, or extend the open period."""
        threshold = self.config.failure_threshold

        def step(d: CircuitData, now: int) -> tuple[CircuitData | None, Transition | None]:
            d.last_failure_time_ms = now
            if d.state is CircuitState.CLOSED:
                d.consecutive_failures += 1
                if d.consecutive_failures >= threshold:
                    d.state = CircuitState.OPEN
                    return d, Transition(CircuitState.CLOSED, CircuitState.OPEN)
                return d, None
            if d.state is CircuitState.HALF_OPEN:
                d.state = CircuitState.OPEN
                d.consecutive_successes = 0
                d.probe_started_at_ms = None
                return d, Transition(CircuitState.HALF_OPEN, CircuitState.OPEN)
            return d, None

        return await self._apply(step, lambda d: None)

    async def release_probe(self) -> None:
        """A half-open probe ended in a non-retryable failure: free the probe slot.

        Such a failure says nothing about the provider's health, so it counts
        neither way; freeing the slot lets the next call probe at once instead
        of waiting 30 s for the slot to go stale (upstream keeps it busy).
        """

        def step(d: CircuitData, now: int) -> tuple[CircuitData | None, None]:
            if d.state is CircuitState.HALF_OPEN and d.probe_started_at_ms is not None:
                d.probe_started_at_ms = None
                return d, None
            return None, None

        await self._apply(step, lambda d: None)

    async def data(self) -> CircuitData:
        """The stored state, without side effects."""
        return (await self._read())[0]

    async def state(self) -> CircuitState:
        """The stored state name, without side effects."""
        return (await self._read())[0].state

    async def trip(self) -> None:
        """Force Open now (as if ``failure_threshold`` failures had just happened)."""
        now = int(self._clock.time() * 1000)
        data = CircuitData(CircuitState.OPEN, self.config.failure_threshold, 0, now, None)
        await self._store.set(self._key, data.to_json())
        self.forget()

    async def reset(self) -> None:
        """Force Closed with empty counters."""
        data = CircuitData()
        await self._store.set(self._key, data.to_json())
        self._observe(data)

    def status(self, state: CircuitState) -> dict[str, Any]:
        """The admin status entry (§8.7) for a state read by the caller."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "state": state.value,
            "failure_threshold": self.config.failure_threshold,
            "success_threshold": self.config.success_threshold,
            "recovery_timeout_seconds": _seconds(self.config.recovery_timeout_seconds),
        }
        if self.config.fallback_provider is not None:
            out["fallback_provider"] = self.config.fallback_provider
        return out

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.provider!r}, {self.config!r})"


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
