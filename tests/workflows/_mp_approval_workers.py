"""Work done inside the spawned processes of ``test_approvals_multiprocess.py``.

Each process builds its own :class:`~acteon.AsyncGateway` on the shared backend
(one SQLite file or one Redis key prefix) with the same approval keys, waits for
the common start instant and then either loops ``tick()`` (expiry) or approves
every approval it was given (decision race). The provider counts executions in
the shared store, so the test process sees the total whatever the backend.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from acteon import Action, ApprovalAlreadyDecided, AsyncGateway
from acteon.providers import FunctionProvider
from acteon.testing import FakeClock, RecordingProvider
from tests._multiprocess_worker import SharedBackend, wait_until

EXECUTIONS_KEY = "mp:t:counter:approved_executions"
KEYS = [{"id": "mp", "secret": "5a" * 32}]
RULES = """
rules:
  - name: needs-approval
    condition: {field: action.action_type, eq: transfer}
    action: {type: request_approval, notify_provider: chat, timeout_seconds: 60}
"""


def build(shared: SharedBackend, clock: FakeClock) -> tuple[AsyncGateway, Any, Any]:
    state = shared.open_state()
    audit = shared.open_audit()

    async def count(action: Action) -> dict[str, int]:
        await state.increment(EXECUTIONS_KEY, 1)
        return {"pid": os.getpid()}

    gw = AsyncGateway(
        rules=RULES, state=state, audit=audit, clock=clock, background=False, approval_keys=KEYS,
        providers=[FunctionProvider("bank", count), RecordingProvider("chat")],
    )
    return gw, state, audit


async def _expire(gw: AsyncGateway, arg: dict[str, Any]) -> dict[str, int]:
    """Tick for a while, as a background loop would; report what this process expired."""
    expired = ticks = 0
    deadline = time.time() + arg.get("seconds", 1.5)
    while time.time() < deadline:
        summary = await gw.tick()
        assert summary.ok, summary.errors
        expired += summary["approval_expiry"]
        ticks += 1
        await asyncio.sleep(0.001)
    return {"expired": expired, "ticks": ticks}


async def _approve(gw: AsyncGateway, arg: dict[str, Any]) -> dict[str, int]:
    """Approve every given link, several at once, in a random order."""
    links = list(arg["links"])
    random.shuffle(links)
    result = {"executed": 0, "already_decided": 0, "other": 0}

    async def one(link: dict[str, Any]) -> None:
        try:
            outcome = await gw.approve("mp", "t", link["id"], sig=link["sig"], expires_at=link["expires_at"],
                                       kid=link["kid"])
        except ApprovalAlreadyDecided:
            result["already_decided"] += 1
            return
        result["executed" if outcome.kind == "executed" else "other"] += 1

    await asyncio.gather(*(one(link) for link in links))
    return result


SCENARIOS = {"expire": _expire, "approve": _approve}


def run(shared: SharedBackend, worker: int, start_at: float, scenario: str, clock_at: float,
        arg: dict[str, Any]) -> dict[str, int]:
    async def main() -> dict[str, int]:
        gw, state, audit = build(shared, FakeClock(clock_at))
        async with state, audit, gw:
            gw._lock.poll_interval = 0.005
            await wait_until(start_at)
            return await SCENARIOS[scenario](gw, arg)

    return asyncio.run(main())
