"""In-memory dispatch versus a `limits` hit, side by side in one process.

A 10-rule YAML set in which only the last rule matches -- a throttle with a
limit high enough never to trigger -- memory state and audit stores, and a
no-op provider. Target (issue: core gateway): one full ``await gw.dispatch()``
costs at most 10x one ``limits`` FixedWindowRateLimiter ``hit()`` on
MemoryStorage.

    python benchmarks/dispatch_memory.py [--n 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from acteon import Action, AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.providers import FunctionProvider
from acteon.state import MemoryStateStore

RULES = "rules:\n" + "".join(
    f"  - {{name: miss-{i}, priority: {i}, condition: {{field: action.action_type, eq: other-{i}}}, "
    "action: {type: suppress}}\n"
    for i in range(9)
) + (
    "  - name: throttle-all\n    priority: 100\n"
    "    condition: {all: [{field: action.namespace, eq: bench}, {field: action.payload.n, gte: 0}]}\n"
    "    action: {type: throttle, max_count: 1000000000, window_seconds: 3600}\n"
)


def bench_limits(n: int) -> float:
    limiter = FixedWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(10**12)
    hit = limiter.hit
    start = time.perf_counter()
    for _ in range(n):
        hit(item, "bench", "tenant")
    return (time.perf_counter() - start) / n


async def bench_dispatch(n: int) -> float:
    noop = FunctionProvider("noop", lambda action: None, inline=True)
    gw = AsyncGateway(rules=RULES, state=MemoryStateStore(), audit=MemoryAuditStore(), providers=[noop],
                      background=False)
    action = Action(namespace="bench", tenant="tenant", provider="noop", action_type="send", payload={"n": 1})
    async with gw:
        for _ in range(200):  # warm up
            await gw.dispatch(action)
        dispatch = gw.dispatch
        start = time.perf_counter()
        for _ in range(n):
            await dispatch(action)
        elapsed = (time.perf_counter() - start) / n
        assert gw.metrics.executed == n + 200, gw.metrics
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gc.collect()
    best_limits = min(bench_limits(args.n) for _ in range(args.rounds))
    best_dispatch = min(asyncio.run(bench_dispatch(args.n)) for _ in range(args.rounds))
    ratio = best_dispatch / best_limits
    print(f"limits FixedWindow hit (memory): {best_limits * 1e6:8.2f} us/op  {1 / best_limits:12,.0f} ops/s")
    print(f"acteon dispatch (memory, 10 rules, throttle, audit): {best_dispatch * 1e6:8.2f} us/op  "
          f"{1 / best_dispatch:12,.0f} ops/s")
    print(f"ratio dispatch/limits: {ratio:.2f}x  (target <= 10x: {'PASS' if ratio <= 10 else 'MISS'})")


if __name__ == "__main__":
    main()
