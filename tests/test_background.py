"""Background processor: tick(), job isolation, per-job intervals, the loop, and claims."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from acteon import AsyncGateway, Gateway
from acteon._background import TickSummary, every, run_jobs
from acteon._claims import DONE_PREFIX, claim, claimed, complete, holder, is_done, new_owner, release
from acteon.state import MemoryStateStore, SQLiteStateStore
from acteon.state._base import StateStore
from acteon.testing import FakeClock
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix

pytestmark = pytest.mark.anyio


class Boom(RuntimeError):
    pass


# ----------------------------------------------------------------------------- tick


async def test_tick_runs_every_job_once_and_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gw = AsyncGateway(clock=clock, background=False)
    calls: list[tuple[str, datetime]] = []

    async def broken(now: datetime) -> int:
        calls.append(("broken", now))
        raise Boom("disk on fire")

    async def counting(now: datetime) -> int:
        calls.append(("counting", now))
        return 2

    gw._jobs["broken"] = broken
    gw._jobs["counting"] = counting
    async with gw:
        with caplog.at_level(logging.ERROR, logger="acteon.background"):
            summary = await gw.tick()
        assert isinstance(summary, TickSummary) and isinstance(summary, dict)
        assert summary["broken"] == 0 and summary["counting"] == 2
        assert "state_swept" in summary and "locks_swept" in summary
        assert not summary.ok and isinstance(summary.errors["broken"], Boom)
        assert "background job 'broken' failed" in caplog.text and "disk on fire" in caplog.text
        assert calls == [("broken", clock.now()), ("counting", clock.now())]  # the clock's time, once each
        clock.advance(5)
        again = await gw.tick()  # a failed job is tried again next tick
        assert [c[0] for c in calls[2:]] == ["broken", "counting"] and calls[-1][1] == clock.now()
        assert set(again.errors) == {"broken"}


async def test_run_jobs_reports_counts_in_registration_order() -> None:
    async def one(now: datetime) -> int:
        return 1

    async def three(now: datetime) -> int:
        return 3

    summary = await run_jobs({"b": three, "a": one}, FakeClock().now())
    assert list(summary.items()) == [("b", 3), ("a", 1)] and summary.ok


async def test_every_runs_at_most_once_per_interval_of_clock_time() -> None:
    clock = FakeClock()
    runs: list[datetime] = []

    async def sweep(now: datetime) -> int:
        runs.append(now)
        return 1

    job = every(60, sweep)
    assert await job(clock.now()) == 1  # first call runs at once
    clock.advance(59)
    assert await job(clock.now()) == 0
    clock.advance(1)
    assert await job(clock.now()) == 1
    assert len(runs) == 2


async def test_the_background_loop_survives_failing_ticks() -> None:
    gw = AsyncGateway(config={"background_interval_seconds": 0.01})
    ran = 0
    done = anyio.Event()

    async def flaky(now: datetime) -> int:
        nonlocal ran
        ran += 1
        if ran >= 3:
            done.set()
        raise Boom("every time")

    async def fatal_sweep() -> int:
        raise RuntimeError("even the sweep fails")

    gw._jobs["flaky"] = flaky
    gw._state.sweep_expired = fatal_sweep  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with gw:
            await done.wait()
    assert ran >= 3


def test_blocking_tick_returns_the_summary() -> None:
    with Gateway(background=False) as gw:
        summary = gw.tick()
        assert isinstance(summary, TickSummary)
        assert {"approval_expiry", "approval_notification_retry"} <= set(summary)


# ----------------------------------------------------------------------------- claims


@pytest.fixture(params=["memory", "sqlite", REDIS_PARAM])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        async with MemoryStateStore(clock=FakeClock()) as memory:
            yield memory
        return
    if request.param == "sqlite":
        async with SQLiteStateStore(str(tmp_path / "claims.db")) as sqlite:
            yield sqlite
        return
    from acteon.state.redis import RedisStateStore

    url = require_redis()
    prefix = redis_prefix()
    try:
        async with RedisStateStore(url, prefix=prefix) as redis:
            yield redis
    finally:
        await _delete_prefix(url, prefix)


async def test_claim_has_one_winner_and_release_is_owner_checked(store: StateStore) -> None:
    key = "ns:t:job_claim:item-1"
    a, b = new_owner("a"), new_owner("b")
    assert a != b and a.endswith(":a")
    assert await claim(store, key, a, 60)
    assert not await claim(store, key, b, 60)
    assert await holder(store, key) == a
    assert not await release(store, key, b)  # not b's to give back
    assert await release(store, key, a)
    assert await holder(store, key) is None
    assert await claim(store, key, b, 60)  # free again


async def test_complete_turns_the_claim_into_a_done_marker(store: StateStore) -> None:
    key = "ns:t:job_claim:item-2"
    owner = new_owner()
    assert await claim(store, key, owner, 60)
    assert not await complete(store, key, "someone-else", 600)
    assert await complete(store, key, owner, 600)
    value = await holder(store, key)
    assert value == DONE_PREFIX + owner and is_done(value)
    assert not await claim(store, key, new_owner(), 60)
    assert not await release(store, key, owner)  # done work is not released


async def test_claimed_context_manager(store: StateStore) -> None:
    key = "ns:t:job_claim:item-3"
    with pytest.raises(Boom):
        async with claimed(store, key, ttl=60) as won:
            assert won
            raise Boom()
    assert await holder(store, key) is None  # released: someone may retry
    async with claimed(store, key, ttl=60, done_ttl=600) as won:
        assert won
    assert is_done(await holder(store, key))
    async with claimed(store, key, ttl=60) as won:
        assert not won
