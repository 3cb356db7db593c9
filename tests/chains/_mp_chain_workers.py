"""Work done inside the spawned processes of ``test_multiprocess.py``.

Each process builds its own gateway on the shared backend (one SQLite file or
one Redis key prefix) with the same chain definition, then calls ``tick()`` in
a loop until every chain has finished. The provider counts each execution in
the shared store under ``mp:t:counter:{chain_id}:{step}``, so the test can
check that every step ran exactly once whichever process ran it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from acteon import Action, AsyncGateway
from acteon.providers import FunctionProvider
from acteon.state._base import StateStore
from tests._multiprocess_worker import SharedBackend, wait_until

CHAIN = {
    "name": "mp",
    "steps": [
        {"name": "a", "provider": "counted", "action_type": "a",
         "payload_template": {"chain": "{{chain_id}}", "step": "a"}},
        {"name": "fan", "parallel": {"steps": [
            {"name": "f1", "provider": "counted", "action_type": "f",
             "payload_template": {"chain": "{{chain_id}}", "step": "f1"}},
            {"name": "f2", "provider": "counted", "action_type": "f",
             "payload_template": {"chain": "{{chain_id}}", "step": "f2"}},
        ]}},
        {"name": "b", "provider": "counted", "action_type": "b",
         "payload_template": {"chain": "{{chain_id}}", "step": "b", "prev": "{{steps.a.body.pid}}"}},
    ],
}
STEPS_PER_CHAIN = 4

RULES = """
rules:
  - name: start
    condition: {field: action.action_type, eq: incident}
    action: {type: chain, chain: mp}
"""


def build(state: StateStore) -> AsyncGateway:
    async def count(action: Action) -> dict[str, Any]:
        payload = action.payload
        await state.increment(f"mp:t:counter:{payload['chain']}:{payload['step']}", 1)
        await asyncio.sleep(0.002)  # a little real work, so processes overlap
        return {"pid": os.getpid()}

    return AsyncGateway(rules=RULES, state=state, providers=[FunctionProvider("counted", count)], chains=[CHAIN],
                        background=False)


async def start_chains(shared: SharedBackend, n: int) -> list[str]:
    from acteon.outcomes import ChainStarted

    state = shared.open_state()
    ids = []
    async with state, build(state) as gw:
        for i in range(n):
            outcome = await gw.dispatch(
                Action(namespace="mp", tenant="t", provider="counted", action_type="incident", payload={"i": i})
            )
            assert isinstance(outcome, ChainStarted)
            ids.append(outcome.chain_id)
    return ids


def run(shared: SharedBackend, worker: int, start_at: float, chains: int) -> dict[str, int]:
    """Tick until every chain has finished; returns how many advances this process made."""

    async def main() -> dict[str, int]:
        state = shared.open_state()
        advanced = 0
        async with state, build(state) as gw:
            gw._lock.poll_interval = 0.005
            await wait_until(start_at)
            deadline = time.time() + 90
            while time.time() < deadline:
                summary = await gw.tick()
                advanced += summary.get("chains", 0)
                finished = await gw.list_chains("mp", "t")
                if len(finished) == chains and all(c.status in ("completed", "failed") for c in finished):
                    break
                await asyncio.sleep(0.005)
        return {"advanced": advanced, "pid": os.getpid()}

    return asyncio.run(main())
