"""The breaker itself (core-pipeline.md §8; §22 scenarios 37-41), over every store backend."""

from __future__ import annotations

import json

import pytest

from acteon import ConfigurationError
from acteon.resilience import (
    PROBE_TIMEOUT_MS,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitData,
    CircuitState,
    Transition,
    circuit_key,
)
from acteon.state._base import StateStore
from acteon.state.memory import MemoryStateStore
from acteon.testing import FakeClock

pytestmark = pytest.mark.anyio

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def breaker(
    store: StateStore | None = None,
    clock: FakeClock | None = None,
    provider: str = "email",
    **config: object,
) -> CircuitBreaker:
    return CircuitBreaker(
        provider,
        CircuitBreakerConfig(**config),  # type: ignore[arg-type]
        store=store or MemoryStateStore(),
        clock=clock or FakeClock(),
    )


# --------------------------------------------------------------------------- config and data (41)


def test_config_defaults_and_validation() -> None:
    cfg = CircuitBreakerConfig()
    assert (cfg.failure_threshold, cfg.success_threshold, cfg.recovery_timeout_seconds, cfg.fallback_provider) == (
        5, 2, 60.0, None)
    with pytest.raises(ConfigurationError, match="failure_threshold must be >= 1"):
        CircuitBreakerConfig(failure_threshold=0).validate()
    with pytest.raises(ConfigurationError, match="success_threshold must be >= 1"):
        CircuitBreakerConfig(success_threshold=0).validate()
    with pytest.raises(ConfigurationError, match="recovery_timeout_seconds must be >= 0"):
        CircuitBreakerConfig(recovery_timeout_seconds=-1).validate()
    CircuitBreakerConfig(recovery_timeout_seconds=0).validate()
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        breaker(failure_threshold=0)


def test_circuit_data_json() -> None:
    data = CircuitData(HALF_OPEN, 1, 2, 1000, None)
    assert data.to_json() == (
        '{"state":"half_open","consecutive_failures":1,"consecutive_successes":2,'
        '"last_failure_time_ms":1000,"probe_started_at_ms":null}'
    )
    assert CircuitData.from_json(data.to_json()) == data
    # the two ms fields may be missing
    parsed = CircuitData.from_json('{"state":"open","consecutive_failures":5,"consecutive_successes":0}')
    assert parsed == CircuitData(OPEN, 5, 0, None, None)
    for bad in ('{"state":"ajar","consecutive_failures":0,"consecutive_successes":0}', "[]", "{", '{"state":"open"}'):
        with pytest.raises(ValueError):
            CircuitData.from_json(bad)
    assert circuit_key("email") == "_system:_global:circuit_breaker:email"


async def test_unreadable_state_fails_open() -> None:
    store = MemoryStateStore()
    await store.set(circuit_key("email"), "not json")
    cb = breaker(store, failure_threshold=1)
    assert await cb.state() is CLOSED
    assert await cb.try_acquire_permit() == (CLOSED, None)
    # the next write replaces the garbage
    assert await cb.record_failure() == Transition(CLOSED, OPEN)
    assert json.loads(await store.get(circuit_key("email")) or "")["state"] == "open"


# --------------------------------------------------------------------------- closed (37)


async def test_consecutive_failures_trip_and_success_resets(shared_store: StateStore) -> None:
    cb = breaker(shared_store, failure_threshold=3)
    assert await cb.record_failure() is None
    assert await cb.record_failure() is None
    assert await cb.state() is CLOSED
    assert await cb.record_success() is None
    assert (await cb.data()).consecutive_failures == 0
    assert await cb.record_failure() is None
    assert await cb.record_failure() is None
    assert await cb.state() is CLOSED
    assert await cb.record_failure() == Transition(CLOSED, OPEN)
    assert await cb.state() is OPEN


async def test_alternating_failures_never_trip() -> None:
    cb = breaker(failure_threshold=3)
    for _ in range(10):
        await cb.record_failure()
        await cb.record_failure()
        await cb.record_success()
    assert await cb.state() is CLOSED


async def test_stored_json_shape(shared_store: StateStore) -> None:
    clock = FakeClock()
    cb = breaker(shared_store, clock, failure_threshold=1)
    await cb.record_failure()
    stored = json.loads(await shared_store.get("_system:_global:circuit_breaker:email") or "")
    assert stored == {
        "state": "open",
        "consecutive_failures": 1,
        "consecutive_successes": 0,
        "last_failure_time_ms": int(clock.time() * 1000),
        "probe_started_at_ms": None,
    }


# --------------------------------------------------------------------------- open / half-open (38-40)


async def test_open_waits_for_recovery_timeout() -> None:
    clock = FakeClock()
    cb = breaker(clock=clock, failure_threshold=1, recovery_timeout_seconds=60)
    await cb.record_failure()
    assert await cb.try_acquire_permit() == (OPEN, None)
    clock.advance(59.999)
    assert await cb.try_acquire_permit() == (OPEN, None)
    clock.advance(0.001)
    assert await cb.try_acquire_permit() == (HALF_OPEN, Transition(OPEN, HALF_OPEN))


async def test_half_open_needs_success_threshold_probes() -> None:
    cb = breaker(failure_threshold=1, success_threshold=3, recovery_timeout_seconds=0)
    await cb.trip()
    assert await cb.try_acquire_permit() == (HALF_OPEN, Transition(OPEN, HALF_OPEN))
    assert await cb.record_success() is None
    assert await cb.state() is HALF_OPEN
    assert await cb.try_acquire_permit() == (HALF_OPEN, None)
    assert await cb.record_success() is None
    assert await cb.try_acquire_permit() == (HALF_OPEN, None)
    assert await cb.record_success() == Transition(HALF_OPEN, CLOSED)
    data = await cb.data()
    assert (data.state, data.consecutive_failures, data.consecutive_successes) == (CLOSED, 0, 0)


async def test_failed_probe_reopens_and_restarts_the_count() -> None:
    cb = breaker(failure_threshold=1, success_threshold=3, recovery_timeout_seconds=0)
    await cb.trip()
    await cb.try_acquire_permit()
    await cb.record_success()
    await cb.try_acquire_permit()
    await cb.record_success()
    await cb.try_acquire_permit()
    assert await cb.record_failure() == Transition(HALF_OPEN, OPEN)
    assert await cb.state() is OPEN
    # a fresh recovery needs three new successes
    assert (await cb.try_acquire_permit())[0] is HALF_OPEN
    assert await cb.record_success() is None
    await cb.try_acquire_permit()
    assert await cb.record_success() is None
    await cb.try_acquire_permit()
    assert await cb.record_success() == Transition(HALF_OPEN, CLOSED)


async def test_failed_probe_restarts_the_recovery_timer() -> None:
    clock = FakeClock()
    cb = breaker(clock=clock, failure_threshold=1, recovery_timeout_seconds=60)
    await cb.record_failure()
    clock.advance(60)
    assert (await cb.try_acquire_permit())[0] is HALF_OPEN
    clock.advance(10)
    await cb.record_failure()
    clock.advance(59)
    assert await cb.try_acquire_permit() == (OPEN, None)
    clock.advance(1)
    assert (await cb.try_acquire_permit())[0] is HALF_OPEN


async def test_probe_exclusivity_and_staleness() -> None:
    clock = FakeClock()
    cb = breaker(clock=clock, failure_threshold=1, success_threshold=1, recovery_timeout_seconds=0)
    await cb.trip()
    assert await cb.try_acquire_permit() == (HALF_OPEN, Transition(OPEN, HALF_OPEN))
    assert await cb.try_acquire_permit() == (OPEN, None)
    # a probe that never reports back stops blocking after 30 s
    clock.advance((PROBE_TIMEOUT_MS - 1) / 1000)
    assert await cb.try_acquire_permit() == (OPEN, None)
    clock.advance(0.001)
    assert await cb.try_acquire_permit() == (HALF_OPEN, None)
    assert await cb.record_success() == Transition(HALF_OPEN, CLOSED)


async def test_probe_exclusivity_across_two_instances(shared_store: StateStore) -> None:
    """Scenario 39 across instances: both breakers read and write the one stored state."""
    clock = FakeClock()
    one = breaker(shared_store, clock, failure_threshold=1, success_threshold=1, recovery_timeout_seconds=0)
    two = breaker(shared_store, clock, failure_threshold=1, success_threshold=1, recovery_timeout_seconds=0)
    await one.trip()
    assert await two.state() is OPEN
    assert await two.try_acquire_permit() == (HALF_OPEN, Transition(OPEN, HALF_OPEN))
    assert await one.try_acquire_permit() == (OPEN, None)
    assert await one.state() is HALF_OPEN
    assert await two.record_success() == Transition(HALF_OPEN, CLOSED)
    assert await one.state() is CLOSED
    # failures recorded by either instance add up
    one3 = breaker(shared_store, clock, failure_threshold=3)
    two3 = breaker(shared_store, clock, failure_threshold=3)
    await one3.record_failure()
    await two3.record_failure()
    assert await one3.record_failure() == Transition(CLOSED, OPEN)
    assert await two3.state() is OPEN


async def test_open_failure_extends_and_success_is_ignored() -> None:
    clock = FakeClock()
    cb = breaker(clock=clock, failure_threshold=1, recovery_timeout_seconds=60)
    await cb.record_failure()
    clock.advance(50)
    assert await cb.record_failure() is None  # stays open, timer restarts
    assert await cb.state() is OPEN
    assert await cb.record_success() is None  # no-op in open
    assert await cb.state() is OPEN
    clock.advance(50)
    assert await cb.try_acquire_permit() == (OPEN, None)
    clock.advance(10)
    assert (await cb.try_acquire_permit())[0] is HALF_OPEN


async def test_trip_and_reset(shared_store: StateStore) -> None:
    clock = FakeClock()
    cb = breaker(shared_store, clock, failure_threshold=4, recovery_timeout_seconds=0)
    await cb.trip()
    assert await cb.data() == CircuitData(OPEN, 4, 0, int(clock.time() * 1000), None)
    await cb.reset()
    assert await cb.data() == CircuitData()
    await cb.trip()
    await cb.try_acquire_permit()
    assert await cb.state() is HALF_OPEN
    await cb.reset()  # also from half-open
    assert await cb.state() is CLOSED


async def test_release_probe_frees_the_slot() -> None:
    """acteon: a probe ending in a non-retryable failure frees the slot at once (upstream: 30 s)."""
    cb = breaker(failure_threshold=1, success_threshold=1, recovery_timeout_seconds=0)
    await cb.trip()
    assert (await cb.try_acquire_permit())[0] is HALF_OPEN
    await cb.release_probe()
    data = await cb.data()
    assert (data.state, data.probe_started_at_ms, data.consecutive_successes) == (HALF_OPEN, None, 0)
    assert await cb.try_acquire_permit() == (HALF_OPEN, None)
    await cb.release_probe()
    await cb.release_probe()  # no-op without a probe
    await cb.reset()
    await cb.release_probe()  # no-op when closed
    assert await cb.state() is CLOSED


# --------------------------------------------------------------------------- the cached closed view


async def test_closed_cache_window() -> None:
    clock = FakeClock()
    store = MemoryStateStore()
    cb = CircuitBreaker("email", store=store, clock=clock, state_cache_seconds=2)
    assert not cb.closed_cached(clock.time())
    await cb.try_acquire_permit()  # reads Closed/0 -> cached for 2 s
    assert cb.closed_cached(clock.time())
    clock.advance(1.999)
    assert cb.closed_cached(clock.time())
    clock.advance(0.001)
    assert not cb.closed_cached(clock.time())
    # a clock that jumps back does not stretch the window
    await cb.try_acquire_permit()
    assert not cb.closed_cached(clock.time() - 5)
    # any failure, trip or non-zero count drops it
    await cb.record_failure()
    assert not cb.closed_cached(clock.time())
    await cb.record_success()
    assert cb.closed_cached(clock.time())
    await cb.trip()
    assert not cb.closed_cached(clock.time())
    await cb.reset()
    assert cb.closed_cached(clock.time())
    off = CircuitBreaker("sms", store=store, clock=clock, state_cache_seconds=0)
    await off.try_acquire_permit()
    assert not off.closed_cached(clock.time())


async def test_status_shape() -> None:
    cb = breaker(provider="email", failure_threshold=10, success_threshold=3, recovery_timeout_seconds=120,
                 fallback_provider="webhook")
    assert cb.status(OPEN) == {
        "provider": "email", "state": "open", "failure_threshold": 10, "success_threshold": 3,
        "recovery_timeout_seconds": 120, "fallback_provider": "webhook"}
    assert "fallback_provider" not in breaker().status(CLOSED)
    assert breaker(recovery_timeout_seconds=0.5).status(HALF_OPEN)["recovery_timeout_seconds"] == 0.5
