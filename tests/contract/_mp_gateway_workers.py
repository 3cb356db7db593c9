"""Work done inside the spawned processes of ``test_multiprocess_gateway.py``.

Every process builds its own :class:`~acteon.AsyncGateway` on the shared
backend (one SQLite file, or one Redis key prefix) and dispatches real actions
through the whole pipeline. The provider counts its executions with the
state store's own ``increment`` on a key no rule touches, so the total is
visible to the test process whatever the backend.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from acteon import Action, AsyncGateway
from acteon.providers import FunctionProvider
from tests._multiprocess_worker import SharedBackend, wait_until

EXECUTIONS_KEY = "mp:t:counter:executions"

DEDUP_RULES = """
rules:
  - name: once
    condition: {field: action.action_type, eq: notify}
    action: {type: deduplicate, ttl_seconds: 3600}
"""

THROTTLE_RULES = """
rules:
  - name: hundred-an-hour
    condition: {field: action.action_type, eq: digest}
    action: {type: throttle, max_count: 100, window_seconds: 3600}
"""


class ShiftedClock:
    """Real time moved by a fixed offset, identical in every process.

    The test puts every process at the start of an epoch-aligned throttle
    window, so no run can straddle a window boundary; locks and TTLs still
    see time pass at the real rate, as they must when processes contend.
    """

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _action(action_type: str, worker: int, i: int, **extra: Any) -> Action:
    return Action(
        namespace="mp", tenant="t", provider="counted", action_type=action_type,
        payload={"worker": worker, "i": i}, **extra,
    )


async def _dedup(gw: AsyncGateway, worker: int, arg: Any) -> dict[str, int]:
    """5 concurrent dispatches of distinct actions sharing one dedup key."""
    outcomes = await asyncio.gather(
        *(gw.dispatch(_action("notify", worker, i, dedup_key="welcome:ada")) for i in range(5))
    )
    return dict(Counter(o.kind for o in outcomes))


async def _dedup_same_action(gw: AsyncGateway, worker: int, arg: Any) -> dict[str, int]:
    """5 concurrent retries of one action (same id): they also meet on the dispatch lock."""
    action = Action(
        id=arg["action_id"], namespace="mp", tenant="t", provider="counted", action_type="notify",
        payload={}, dedup_key="retry:1",
    )
    outcomes = await asyncio.gather(*(gw.dispatch(action) for _ in range(5)))
    return dict(Counter(o.kind for o in outcomes))


async def _exclusive(gw: AsyncGateway, worker: int, arg: Any) -> dict[str, int]:
    """5 concurrent dispatches of one action (allowed): the dispatch lock serializes them."""
    action = Action(
        id=arg["action_id"], namespace="mp", tenant="t", provider="counted", action_type="ping", payload={}
    )
    outcomes = await asyncio.gather(*(gw.dispatch(action) for _ in range(5)))
    return dict(Counter(o.kind for o in outcomes))


async def _throttle(gw: AsyncGateway, worker: int, arg: Any) -> dict[str, int]:
    """250 dispatches per process: 25 tasks with 10 each."""
    kinds: Counter[str] = Counter()

    async def task(t: int) -> None:
        for i in range(10):
            kinds[(await gw.dispatch(_action("digest", worker, t * 10 + i))).kind] += 1

    await asyncio.gather(*(task(t) for t in range(25)))
    return dict(kinds)


SCENARIOS: dict[str, tuple[str, Callable[[AsyncGateway, int, Any], Awaitable[dict[str, int]]]]] = {
    "dedup": (DEDUP_RULES, _dedup),
    "dedup_same_action": (DEDUP_RULES, _dedup_same_action),
    "throttle": (THROTTLE_RULES, _throttle),
    "exclusive": ("rules: []", _exclusive),
}


def run(
    shared: SharedBackend, worker: int, start_at: float, scenario: str, offset: float, arg: Any
) -> dict[str, int]:
    """Build a gateway on the shared backend, wait for the common start, dispatch, close.

    ``offset`` shifts the gateway clock (see :class:`ShiftedClock`).
    """
    rules, body = SCENARIOS[scenario]

    async def main() -> dict[str, int]:
        state = shared.open_state()

        log_path = arg.get("log")

        async def count(action: Action) -> dict[str, int]:
            if log_path:  # mark the critical section; another holder would interleave here
                with open(log_path, "a") as log:
                    log.write(f"B {os.getpid()}\n")
                await asyncio.sleep(0.005)
                with open(log_path, "a") as log:
                    log.write(f"E {os.getpid()}\n")
            await state.increment(EXECUTIONS_KEY, 1)
            return {"pid": os.getpid()}

        audit = shared.open_audit()
        gw = AsyncGateway(
            rules=rules,
            state=state,
            audit=audit,
            providers=[FunctionProvider("counted", count)],
            clock=ShiftedClock(offset),
            background=False,
        )
        async with state, audit, gw:
            gw._lock.poll_interval = 0.005  # contention is the point here: poll briskly
            await wait_until(start_at)
            return await body(gw, worker, arg)

    return asyncio.run(main())
