"""Closed-path circuit-breaker overhead: acteon versus pybreaker, side by side in one process.

What is compared (peers.md §15, B5):

* pybreaker: ``CircuitBreaker().call(fn)`` minus a bare ``fn()`` -- the cost its
  closed path adds to one call;
* acteon: the provider step of a dispatch (``AsyncGateway._execute_action``, the
  executor on an inline no-op provider) with a closed breaker minus the same
  step on a gateway without breakers -- the cost the breaker adds per dispatch
  (permit + success record, both answered by the cached Closed view);
* acteon with the cache off (``state_cache_seconds = 0``): a store read per
  permit and per success, on the in-memory store, for reference;
* the full ``dispatch()`` (no rules, memory state, no audit) with and without a breaker.

Target (issue "Time and resilience"): acteon's overhead <= pybreaker's.
Times are this process's CPU time. Each comparison runs paired rounds (the two sides back to back, order
alternating) and reports the median of the per-round differences, so machine
noise hits both sides alike; compare the ratio, not absolute times.

    python benchmarks/breaker_overhead.py [--n 50000] [--rounds 21]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pybreaker

from acteon import Action, AsyncGateway
from acteon.providers import FunctionProvider
from acteon.state import MemoryStateStore

# CPU time of this process, not wall time: on a shared machine, time spent descheduled while
# other processes run would otherwise land on whichever side happened to be running.
clock = time.process_time


def noop() -> None:
    return None


def bench_bare(n: int) -> float:
    fn = noop
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n


def bench_pybreaker(n: int) -> float:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    call, fn = breaker.call, noop
    start = clock()
    for _ in range(n):
        call(fn)
    elapsed = (clock() - start) / n
    assert breaker.current_state == "closed"
    return elapsed


def make_gateway(breaker: Any) -> AsyncGateway:
    provider = FunctionProvider("noop", lambda action: None, inline=True)
    return AsyncGateway(state=MemoryStateStore(), providers=[provider], background=False, circuit_breaker=breaker)


ACTION = Action(namespace="bench", tenant="tenant", provider="noop", action_type="send", payload={"n": 1})


async def _timed(n: int, step: Callable[[Action], Awaitable[Any]]) -> float:
    for _ in range(500):  # warm up (and fill the breaker's cached view)
        await step(ACTION)
    start = clock()
    for _ in range(n):
        await step(ACTION)
    return (clock() - start) / n


async def bench_execute(n: int, breaker: Any) -> float:
    async with make_gateway(breaker) as gw:
        elapsed = await _timed(n, gw._execute_action)
        if breaker:
            statuses = await gw.circuit_breakers()
            assert statuses is not None and statuses[0]["state"] == "closed"
        return elapsed


async def bench_dispatch(n: int, breaker: Any) -> float:
    async with make_gateway(breaker) as gw:
        elapsed = await _timed(n, gw.dispatch)
        assert gw.metrics.executed == n + 500
        return elapsed


def paired(rounds: int, base: Callable[[], float], other: Callable[[], float]) -> tuple[float, float, float]:
    """Best time of each side and the median per-round difference (order alternates each round)."""
    base_t: list[float] = []
    other_t: list[float] = []
    diffs: list[float] = []
    for i in range(rounds):
        gc.collect()
        if i % 2:
            b, o = base(), other()
        else:
            o, b = other(), base()
        base_t.append(b)
        other_t.append(o)
        diffs.append(o - b)
    return min(base_t), min(other_t), statistics.median(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    n, rounds = args.n, args.rounds
    cached = {"failure_threshold": 5}
    uncached = {"failure_threshold": 5, "state_cache_seconds": 0}

    bare, py, py_over = paired(rounds, lambda: bench_bare(n), lambda: bench_pybreaker(n))
    plain, guarded, ac_over = paired(
        rounds, lambda: asyncio.run(bench_execute(n, None)), lambda: asyncio.run(bench_execute(n, cached)))
    _, uncached_t, un_over = paired(
        max(rounds // 3, 3), lambda: asyncio.run(bench_execute(n // 4, None)),
        lambda: asyncio.run(bench_execute(n // 4, uncached)))
    d_plain, d_breaker, d_over = paired(
        max(rounds // 2, 3), lambda: asyncio.run(bench_dispatch(n // 2, None)),
        lambda: asyncio.run(bench_dispatch(n // 2, cached)))

    def us(x: float) -> str:
        return f"{x * 1e6:7.3f} us"

    print(f"{rounds} paired rounds of {n:,} calls; overheads are medians of per-round differences")
    print(f"bare fn() call:                         {us(bare)}")
    print(f"pybreaker CircuitBreaker().call(fn):    {us(py)}")
    print(f"  pybreaker closed-path overhead:       {us(py_over)}   (best-of difference {us(py - bare)})")
    print(f"acteon provider step, no breaker:       {us(plain)}")
    print(f"acteon provider step, closed breaker:   {us(guarded)}")
    print(f"  acteon closed-path overhead:          {us(ac_over)}   (best-of difference {us(guarded - plain)})")
    print(f"  (cache off, 2 memory-store reads:     {us(un_over)}; step {us(uncached_t)})")
    print(f"acteon dispatch(), no breaker:          {us(d_plain)}")
    print(f"acteon dispatch(), closed breaker:      {us(d_breaker)}   (median difference {us(d_over)})")
    ratio = ac_over / py_over if py_over > 0 else float("inf")
    verdict = "PASS" if ac_over <= py_over else "MISS"
    print(f"overhead ratio acteon/pybreaker: {ratio:.2f}x  (target <= 1x: {verdict})")


if __name__ == "__main__":
    main()
