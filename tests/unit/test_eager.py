"""FastLimiter: the executor's concurrency bound without a checkpoint per call."""

from __future__ import annotations

import anyio
import pytest

from acteon._eager import FastLimiter

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_fast_limiter_bounds_and_hands_over() -> None:
    limiter = FastLimiter(2)
    in_flight = peak = 0

    async def work() -> None:
        nonlocal in_flight, peak
        async with limiter:
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.sleep(0.005)
            in_flight -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(work)
    assert peak == 2 and limiter.in_use == 0


async def test_fast_limiter_cancelled_waiter_does_not_leak_a_slot() -> None:
    limiter = FastLimiter(1)
    await limiter.acquire()
    with anyio.move_on_after(0.02):
        await limiter.acquire()
    limiter.release()
    assert limiter.in_use == 0
    with anyio.fail_after(1):
        await limiter.acquire()
    assert limiter.in_use == 1
