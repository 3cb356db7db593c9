"""The distributed lock contract (Part D 27-34 of ``state-audit.md``)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from acteon._exceptions import LockExpired, StateTimeout
from acteon.state._base import DistributedLock
from acteon.testing._contracts._support import TimeControl, _gather


@pytest.mark.anyio
class DistributedLockContract:
    """Behaviour every :class:`~acteon.state.DistributedLock` must show (Part D 27-34).

    Needs the fixtures ``lock`` (no lock held) and ``time_control``.
    """

    async def test_acquire_and_release(self, lock: DistributedLock) -> None:
        """D27: acquire, release (``True``), acquire again."""
        guard = await lock.try_acquire("test-lock-1", 10)
        assert guard is not None
        assert await guard.is_held()
        assert await guard.release() is True
        assert await guard.is_held() is False
        again = await lock.try_acquire("test-lock-1", 10)
        assert again is not None
        assert await again.release() is True

    async def test_contention(self, lock: DistributedLock) -> None:
        """D28: a held lock cannot be taken until released."""
        held = await lock.try_acquire("test-lock-2", 10)
        assert held is not None
        assert await lock.try_acquire("test-lock-2", 10) is None
        assert await lock.try_acquire("test-lock-2-other", 10) is not None
        await held.release()
        assert await lock.try_acquire("test-lock-2", 10) is not None

    async def test_extend_keeps_lock(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D29: ``extend`` sets the expiry to now + duration."""
        scale = time_control.scale
        guard = await lock.try_acquire("test-lock-3", 5 * scale)
        assert guard is not None
        await guard.extend(10 * scale)
        await time_control.advance(7)
        assert await guard.is_held()
        assert await lock.try_acquire("test-lock-3", 5 * scale) is None
        await guard.release()

    async def test_is_held(self, lock: DistributedLock) -> None:
        guard = await lock.try_acquire("test-lock-4", 10)
        assert guard is not None
        assert await guard.is_held() is True
        await guard.release()
        assert await guard.is_held() is False

    async def test_expiry_and_owner_fencing(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D30: an expired holder can neither release nor extend the next holder's lock."""
        scale = time_control.scale
        a = await lock.try_acquire("expire-lock", 2 * scale)
        assert a is not None
        await time_control.advance(3)
        assert await a.is_held() is False
        b = await lock.try_acquire("expire-lock", 10 * scale)
        assert b is not None
        assert await a.release() is False
        assert await b.is_held() is True
        with pytest.raises(LockExpired):
            await a.extend(5 * scale)
        assert await b.is_held() is True
        await b.release()

    async def test_release_twice(self, lock: DistributedLock) -> None:
        guard = await lock.try_acquire("released-twice", 10)
        assert guard is not None
        assert await guard.release() is True
        assert await guard.release() is False
        with pytest.raises(LockExpired):
            await guard.extend(10)

    async def test_async_with_releases(self, lock: DistributedLock) -> None:
        guard = await lock.acquire("context-lock", 10, 1)
        async with guard:
            assert await lock.try_acquire("context-lock", 10) is None
        assert await lock.try_acquire("context-lock", 10) is not None

    async def test_acquire_times_out(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D31: ``acquire`` raises ``StateTimeout`` after the timeout, not much later."""
        scale = time_control.scale
        holder = await lock.try_acquire("timeout-lock", 60 * scale)
        assert holder is not None
        start = time_control.time()
        with pytest.raises(StateTimeout):
            await lock.acquire("timeout-lock", 5 * scale, 1 * scale)
        elapsed = time_control.time() - start
        assert elapsed >= 1 * scale - 1e-6
        assert elapsed < 1.2 * scale + time_control.slack
        await holder.release()

    async def test_acquire_with_zero_timeout_tries_once(self, lock: DistributedLock) -> None:
        guard = await lock.acquire("zero-timeout", 10, 0)
        assert await guard.is_held()
        with pytest.raises(StateTimeout):
            await lock.acquire("zero-timeout", 10, 0)
        await guard.release()

    async def test_acquire_waits_for_expiry(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D32: ``acquire`` succeeds once the previous lease lapses."""
        scale = time_control.scale
        first = await lock.try_acquire("wait-lock", 1 * scale)
        assert first is not None
        start = time_control.time()
        second = await lock.acquire("wait-lock", 5 * scale, 10 * scale)
        assert time_control.time() - start >= 1 * scale - 0.05 * scale
        assert await second.is_held()
        assert await first.is_held() is False
        await second.release()

    async def test_mutual_exclusion(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D33: 10 contending workers all get the lock, never two at a time."""
        scale = time_control.scale
        inside = 0
        max_inside = 0
        done: list[int] = []

        async def worker(i: int) -> None:
            nonlocal inside, max_inside
            guard = await lock.acquire("contention-lock", 30 * scale, 60 * scale)
            try:
                inside += 1
                max_inside = max(max_inside, inside)
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                inside -= 1
            finally:
                assert await guard.release() is True
            done.append(i)

        await _gather(10, worker)
        assert sorted(done) == list(range(10))
        assert max_inside == 1

    async def test_sweep_expired_locks(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D34: the sweeper removes expired locks only.

        On a ``real_time`` backend the server frees an expired lock by itself, so
        ``sweep_expired`` reports 0 there; either way the leaked lock can be taken
        again and the live one is still held.
        """
        scale = time_control.scale
        leaked = await lock.try_acquire("leaked-lock", 2 * scale)
        assert leaked is not None
        live = await lock.try_acquire("live-lock", 600 * scale)
        assert live is not None
        assert await lock.sweep_expired() == 0
        await time_control.advance(3)
        if time_control.real_time:
            assert await lock.sweep_expired() == 0
        else:
            assert await lock.sweep_expired() == 1
            assert await lock.sweep_expired() == 0
        assert not await leaked.is_held()
        again = await lock.try_acquire("leaked-lock", 60 * scale)
        assert again is not None
        assert await live.is_held()
        assert await again.release()
        assert await live.release()


