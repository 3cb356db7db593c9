"""Work done inside the spawned processes of ``test_workflows_multiprocess.py``.

Each process builds its own gateway on the shared backend with a clock past
every due time and calls ``tick()`` in a loop. Its provider counts each
notification it executes in the shared store (one counter per group id or
event fingerprint), so the test process can check that every group
notification and every timeout was sent by exactly one process.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from acteon import Action, AsyncGateway
from acteon.providers import FunctionProvider
from acteon.state._base import StateStore
from acteon.testing import FakeClock
from tests._multiprocess_worker import SharedBackend, wait_until

NS, TENANT = "mp", "t"

RULES = """
rules:
  - name: batch
    condition: {field: action.action_type, eq: alert}
    action: {type: group, group_by: [metadata.cluster], group_wait_seconds: 30}
  - name: track
    condition: {field: action.action_type, eq: node}
    action: {type: state_machine, state_machine: node, fingerprint_fields: [action_type, metadata.node]}
"""

MACHINES: list[dict[str, Any]] = [{
    "name": "node",
    "initial_state": "up",
    "states": ["up", "down", "lost"],
    "transitions": [{"from": "up", "to": "down"}],
    "timeouts": [{"in_state": "down", "after_seconds": 60, "transition_to": "lost"}],
}]


def counter_key(note: Action) -> str:
    ident = note.payload["group_id"] if note.action_type == "group_notification" else note.payload["fingerprint"]
    return f"{NS}:{TENANT}:counter:sent:{ident}"


def gateway(state: StateStore, now: float) -> AsyncGateway:
    async def count(action: Action) -> dict[str, int]:
        await state.increment(counter_key(action), 1)
        return {"pid": os.getpid()}

    return AsyncGateway(rules=RULES, state=state, providers=[FunctionProvider("counted", count)],
                        clock=FakeClock(now), background=False, state_machines=MACHINES)


def alert(cluster: str, i: int) -> Action:
    return Action(namespace=NS, tenant=TENANT, provider="counted", action_type="alert",
                  metadata={"cluster": cluster}, payload={"i": i})


def node_down(node: str) -> Action:
    return Action(namespace=NS, tenant=TENANT, provider="counted", action_type="node",
                  metadata={"node": node}, status="down")


def run(shared: SharedBackend, worker: int, start_at: float, now: float, ticks: int) -> dict[str, int]:
    """Tick ``ticks`` times from the common start; returns the summed tick summary."""

    async def main() -> dict[str, int]:
        state = shared.open_state()
        gw = gateway(state, now)
        totals = {"group_flush": 0, "state_timeouts": 0}
        async with state, gw:
            gw._lock.poll_interval = 0.005
            await wait_until(start_at)
            for _ in range(ticks):
                summary = await gw.tick()
                for name in totals:
                    totals[name] += summary.get(name, 0)
                await asyncio.sleep(0.002)
        return totals

    return asyncio.run(main())
