"""Redis primitive costs, measured in one process against one server.

    python benchmarks/redis_primitives.py [redis://127.0.0.1:6379/15] [--n 5000] [--rounds 5]

Prints best-of-rounds microseconds per operation for:

* raw redis-py asyncio ``PING`` (the reference round trip);
* ``RedisStateStore.check_and_set`` sequentially;
* the dispatch fast path ``claim_and_check_and_set`` + ``release_deferred``
  sequentially (target: about one round trip, i.e. <= PING / 0.45);
* the same with 64 dispatches in flight, and its speed-up over sequential
  (target >= 3x: needs auto-pipelining);
* the ``limits`` library's ``FixedWindowRateLimiter.hit()`` on its Redis
  storage (sync and asyncio) next to ``RedisStateStore.increment_window``.

Keys live under a random prefix on the given database and are deleted at the
end (never FLUSHDB). Figures are noisy on shared machines: compare ratios
from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from acteon.state import StateKey
from acteon.state.redis import RedisStateStore


def best(samples: list[float]) -> float:
    return min(samples)


async def timed_sequential(n: int, rounds: int, op: Callable[[int], Awaitable[object]]) -> float:
    samples = []
    counter = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            counter += 1
            await op(counter)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return best(samples)


async def timed_concurrent(n: int, rounds: int, width: int, op: Callable[[int], Awaitable[object]]) -> float:
    samples = []
    counter = 0
    per_task = max(1, n // width)

    async def worker() -> None:
        nonlocal counter
        for _ in range(per_task):
            counter += 1
            await op(counter)

    for _ in range(rounds):
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        samples.append((time.perf_counter() - start) / (per_task * width) * 1e6)
    return best(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", nargs="?", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--n", type=int, default=5000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds, url = args.n, args.rounds, args.url
    prefix = "acteon-bench-" + uuid.uuid4().hex[:8]

    import redis.asyncio as aredis

    raw = aredis.Redis.from_url(url)
    await raw.ping()
    ping = await timed_sequential(n, rounds, lambda i: raw.ping())

    store = RedisStateStore(url, prefix=prefix)
    await store.start()
    lock = f"dispatch:{prefix}"

    async def cas(i: int) -> object:
        return await store.check_and_set(StateKey("bench", "t", "dedup", str(i)), "1", 60)

    async def dispatch(i: int) -> object:
        guard, created = await store.claim_and_check_and_set(
            f"{lock}:{i}", 30, StateKey("bench", "t", "dedup", f"d{i}"), "1", 60
        )
        if guard is not None:
            await guard.release_deferred()
        return created

    window_end = (int(time.time()) // 60 + 2) * 60_000

    async def window(i: int) -> object:
        return await store.increment_window(StateKey("bench", "t", "rate_limit", "rule"), 1, window_end)

    cas_seq = await timed_sequential(n, rounds, cas)
    dispatch_seq = await timed_sequential(n, rounds, dispatch)
    dispatch_64 = await timed_concurrent(n * 2, rounds, 64, dispatch)
    cas_64 = await timed_concurrent(n * 2, rounds, 64, cas)
    window_seq = await timed_sequential(n, rounds, window)

    # limits: FixedWindowRateLimiter.hit() on its Redis storages.
    import limits
    import limits.aio.storage
    import limits.aio.strategies
    import limits.storage
    import limits.strategies

    item = limits.parse("1000000000/minute")
    sync_storage = limits.storage.RedisStorage(url.replace("redis://", "redis://", 1), key_prefix=prefix)
    sync_limiter = limits.strategies.FixedWindowRateLimiter(sync_storage)
    sync_limiter.hit(item, "bench")
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            sync_limiter.hit(item, "bench")
        samples.append((time.perf_counter() - start) / n * 1e6)
    limits_sync = best(samples)
    async_storage = limits.aio.storage.RedisStorage(
        "async+" + url, implementation="redispy", key_prefix=prefix
    )
    async_limiter = limits.aio.strategies.FixedWindowRateLimiter(async_storage)
    await async_limiter.hit(item, "bench")
    limits_async = await timed_sequential(n, rounds, lambda i: async_limiter.hit(item, "bench"))

    print(f"Redis primitives against {url} (best of {rounds} x {n} ops, µs per op)")
    print(f"  redis-py asyncio PING                          {ping:8.1f}")
    print(f"  check_and_set, sequential                      {cas_seq:8.1f}   ({cas_seq / ping:.2f}x PING)")
    print(
        f"  claim_and_check_and_set + release_deferred     {dispatch_seq:8.1f}   "
        f"({dispatch_seq / ping:.2f}x PING; target <= {1 / 0.45:.2f}x)"
    )
    print(
        f"  same, 64 in flight                             {dispatch_64:8.1f}   "
        f"({dispatch_seq / dispatch_64:.1f}x the sequential rate; target >= 3x)"
    )
    print(
        f"  check_and_set, 64 in flight                    {cas_64:8.1f}   "
        f"({cas_seq / cas_64:.1f}x the sequential rate)"
    )
    print(f"  increment_window, sequential                   {window_seq:8.1f}")
    print(
        f"  limits FixedWindow hit(), sync RedisStorage    {limits_sync:8.1f}   "
        f"(increment_window is {limits_sync / window_seq:.1f}x faster)"
    )
    print(
        f"  limits FixedWindow hit(), asyncio RedisStorage {limits_async:8.1f}   "
        f"(increment_window is {limits_async / window_seq:.1f}x faster)"
    )
    print(f"  store batches/commands: {store.client.stats}")

    await store.aclose()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
    for i in range(0, len(keys), 500):
        await raw.delete(*keys[i : i + 500])
    await raw.aclose()
    sync_storage.reset() if hasattr(sync_storage, "reset") else None


if __name__ == "__main__":
    asyncio.run(main())
