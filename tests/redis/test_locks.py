"""RedisDistributedLock (Part D 27-33) and the dispatch fast paths (claim + op, deferred release)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from acteon import LockExpired, StateSerializationError, StateTimeout
from acteon.state import StateKey
from acteon.state.redis import RedisStateStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_basic_acquire_release(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    guard = await lock.try_acquire("test-lock-1", 10)
    assert guard is not None
    assert await guard.is_held()
    assert await guard.release() is True
    assert await guard.release() is False  # never raises for not-held
    again = await lock.try_acquire("test-lock-1", 10)
    assert again is not None
    await again.release()


async def test_contention(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    held = await lock.try_acquire("test-lock-2", 10)
    assert held is not None
    assert await lock.try_acquire("test-lock-2", 10) is None
    await held.release()
    assert await lock.try_acquire("test-lock-2", 10) is not None


async def test_extend(store: RedisStateStore, raw: Any, prefix: str) -> None:
    lock = store.distributed_lock()
    guard = await lock.try_acquire("test-lock-3", 0.2)
    assert guard is not None
    await guard.extend(10)
    assert raw.pttl(f"{prefix}:lock:test-lock-3") > 9000
    await asyncio.sleep(0.3)
    assert await guard.is_held()
    assert await lock.try_acquire("test-lock-3", 10) is None


async def test_expiry_and_fencing(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    a = await lock.try_acquire("expire-lock", 0.1)
    assert a is not None
    await asyncio.sleep(0.2)
    assert not await a.is_held()
    b = await lock.try_acquire("expire-lock", 10)
    assert b is not None
    assert await a.release() is False
    assert await b.is_held()
    with pytest.raises(LockExpired, match="expire-lock"):
        await a.extend(5)


async def test_acquire_timeout(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    assert await lock.try_acquire("timeout-lock", 60) is not None
    start = time.monotonic()
    with pytest.raises(StateTimeout):
        await lock.acquire("timeout-lock", 5, 0.5)
    assert 0.5 <= time.monotonic() - start < 0.7


async def test_acquire_waits_for_expiry(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    assert await lock.try_acquire("wait-lock", 0.3) is not None
    guard = await lock.acquire("wait-lock", 5, 3)
    assert await guard.is_held()


async def test_acquire_ignores_fake_clock(redis_url: str, prefix: str) -> None:
    from acteon.testing import FakeClock

    async with RedisStateStore(redis_url, prefix=prefix, clock=FakeClock()) as store:
        lock = store.distributed_lock()
        assert await lock.try_acquire("fake", 0.3) is not None
        # A fake clock would make the poll loop time out at once; Redis lock waits are real.
        guard = await lock.acquire("fake", 5, 2)
        assert await guard.is_held()


async def test_mutual_exclusion(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    inside = 0
    max_inside = 0
    done = 0

    async def worker() -> None:
        nonlocal inside, max_inside, done
        guard = await lock.acquire("contention-lock", 0.2, 5)
        inside += 1
        max_inside = max(max_inside, inside)
        await asyncio.sleep(0.005)
        inside -= 1
        await guard.release()
        done += 1

    await asyncio.gather(*(worker() for _ in range(10)))
    assert done == 10
    assert max_inside == 1


async def test_guard_context_manager(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    guard = await lock.try_acquire("ctx", 10)
    assert guard is not None
    async with guard:
        assert await guard.is_held()
    assert not await guard.is_held()


async def test_sub_millisecond_lease_is_accepted(store: RedisStateStore) -> None:
    guard = await store.distributed_lock().try_acquire("tiny", 0.0001)
    assert guard is not None


# --------------------------------------------------------------------------- fast paths


async def test_claim_and_check_and_set(store: RedisStateStore) -> None:
    key = StateKey("ns", "t", "dedup", "d1")
    guard, created = await store.claim_and_check_and_set("dispatch:ns:t:a1", 30, key, "1", 60)
    assert guard is not None and created is True
    assert await guard.is_held()
    # Lock busy: nothing else happens.
    busy, created2 = await store.claim_and_check_and_set("dispatch:ns:t:a1", 30, key, "1", 60)
    assert busy is None and created2 is False
    assert await guard.release()
    # Another action with the same dedup key: lock free, marker exists.
    g2, created3 = await store.claim_and_check_and_set("dispatch:ns:t:a2", 30, key, "1", 60)
    assert g2 is not None and created3 is False
    await g2.release()
    assert await store.get_versioned(key) == ("1", 1)


async def test_claim_and_increment_window(store: RedisStateStore, raw: Any) -> None:
    key = StateKey("ns", "t", "rate_limit", "rule")
    end = int(raw.time()[0]) * 1000 + 60_000
    guard, count = await store.claim_and_increment_window("dispatch:ns:t:a1", 30, key, 1, end)
    assert guard is not None and count == 1
    busy, count2 = await store.claim_and_increment_window("dispatch:ns:t:a1", 30, key, 1, end)
    assert busy is None and count2 == 0
    await guard.release()
    guard, count = await store.claim_and_increment_window("dispatch:ns:t:a1", 30, key, 1, end)
    assert guard is not None and count == 2
    await guard.release()


async def test_claim_and_increment_window_error_releases_lock(store: RedisStateStore) -> None:
    key = StateKey("ns", "t", "rate_limit", "bad")
    await store.set(key, "not-a-number")
    with pytest.raises(StateSerializationError):
        await store.claim_and_increment_window("dispatch:ns:t:bad", 30, key, 1, 2**50)
    guard = await store.distributed_lock().try_acquire("dispatch:ns:t:bad", 1)
    assert guard is not None  # the lock was released by the script


async def test_claim_is_one_command(store: RedisStateStore) -> None:
    stats = store.client.stats
    before = stats.commands
    guard, _ = await store.claim_and_check_and_set("one", 30, StateKey("ns", "t", "dedup", "one"), "1")
    assert guard is not None
    assert stats.commands - before == 1
    await guard.release_deferred()
    assert stats.commands - before == 1  # queued, not sent


async def test_release_deferred_rides_with_next_batch(redis_url: str, prefix: str) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, deferred_flush_delay=None) as store:
        stats = store.client.stats
        key = StateKey("ns", "t", "dedup", "x")
        guard, _ = await store.claim_and_check_and_set("dispatch:a", 30, key, "1")
        assert guard is not None
        await guard.release_deferred()
        batches = stats.batches
        # The next command goes out in the same write as the release, and sees it applied.
        again = await store.distributed_lock().try_acquire("dispatch:a", 30)
        assert again is not None
        assert stats.batches == batches + 1
        await again.release()


async def test_release_deferred_is_sent_after_the_delay(redis_url: str, prefix: str, raw: Any) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, deferred_flush_delay=0.01) as store:
        guard, _ = await store.claim_and_check_and_set("lazy", 30, StateKey("ns", "t", "dedup", "y"), "1")
        assert guard is not None
        await guard.release_deferred()
        assert raw.exists(f"{prefix}:lock:lazy") == 1
        await asyncio.sleep(0.1)
        assert raw.exists(f"{prefix}:lock:lazy") == 0


async def test_release_deferred_flushed_on_close(redis_url: str, prefix: str, raw: Any) -> None:
    store = RedisStateStore(redis_url, prefix=prefix, deferred_flush_delay=None)
    guards = []
    for i in range(20):
        key = StateKey("ns", "t", "dedup", str(i))
        guard, _ = await store.claim_and_check_and_set(f"close:{i}", 30, key, "1")
        assert guard is not None
        guards.append(guard)
    for guard in guards:
        await guard.release_deferred()
    assert len(raw.keys(f"{prefix}:lock:*")) == 20
    await store.aclose()
    assert raw.keys(f"{prefix}:lock:*") == []
    await store.aclose()  # idempotent


async def test_release_deferred_never_frees_a_newer_holder(store: RedisStateStore) -> None:
    lock = store.distributed_lock()
    old = await lock.try_acquire("fenced", 0.05)
    assert old is not None
    await asyncio.sleep(0.1)
    new = await lock.try_acquire("fenced", 10)
    assert new is not None
    await old.release_deferred()
    await store.flush()
    assert await new.is_held()


async def test_cancelled_claim_does_not_leak_the_lock(redis_url: str, prefix: str, raw: Any) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, deferred_flush_delay=0.005) as store:
        await store.get(StateKey("ns", "t", "state", "warm"))
        key = StateKey("ns", "t", "dedup", "cancelled")
        task = asyncio.ensure_future(store.claim_and_check_and_set("cancel-me", 30, key, "1"))
        await asyncio.sleep(0)  # the command is queued; cancel before the reply is read
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert raw.exists(f"{prefix}:lock:cancel-me") == 0
        assert await store.get(key) == "1"  # the dedup marker itself was written
        task = asyncio.ensure_future(store.distributed_lock().try_acquire("cancel-me-2", 30))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.flush()
        assert raw.exists(f"{prefix}:lock:cancel-me-2") == 0


def test_owner_tokens_are_unique_and_reseeded_after_fork() -> None:
    import os

    from acteon.state import redis as redis_module

    tokens = {redis_module._new_owner() for _ in range(10_000)}
    assert len(tokens) == 10_000
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the next token
        os.write(write, redis_module._new_owner().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_token = os.read(read, 200).decode()
    os.close(read)
    os.close(write)
    assert child_token.split("-")[0] != redis_module._new_owner().split("-")[0]
