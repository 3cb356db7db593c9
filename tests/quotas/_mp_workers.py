"""Work done inside the spawned processes of ``test_multiprocess.py``.

Every process builds its own ``AsyncGateway`` on the shared backend and
dispatches through the whole pipeline. Providers count their executions in
the shared store (keys no quota or rule touches), so the test process sees
the totals whatever the backend.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from acteon import Action, AsyncGateway
from acteon.providers import FunctionProvider
from tests._multiprocess_worker import SharedBackend, wait_until
from tests.contract._mp_gateway_workers import ShiftedClock

EXECUTED_KEY = "mp:t:counter:executed"
NOTIFIED_KEY = "mp:t:counter:notified"
TASKS = 5


def run(shared: SharedBackend, worker: int, start_at: float, offset: float, arg: dict[str, Any]) -> dict[str, int]:
    """Build a gateway, wait for the common start, dispatch ``arg["per_process"]`` actions, close."""

    async def main() -> dict[str, int]:
        state = shared.open_state()

        def counting(key: str) -> Any:
            async def execute(action: Action) -> dict[str, bool]:
                await state.increment(key, 1)
                return {"ok": True}

            return execute

        gw = AsyncGateway(
            state=state,
            providers=[FunctionProvider("email", counting(EXECUTED_KEY)), FunctionProvider("ops", counting(NOTIFIED_KEY))],
            clock=ShiftedClock(offset),
            background=False,
            quota_policies=arg.get("quota_policies"),
            provider_costs=arg.get("provider_costs"),
            budgets=arg.get("budgets"),
        )
        kinds: Counter[str] = Counter()
        per_task = arg["per_process"] // TASKS

        async def task() -> None:
            for _ in range(per_task):
                action = Action(namespace="mp", tenant="t", provider="email", action_type="send", payload={})
                kinds[(await gw.dispatch(action)).kind] += 1

        async with state, gw:
            await wait_until(start_at)
            await asyncio.gather(*(task() for _ in range(TASKS)))
        return dict(kinds)

    return asyncio.run(main())


def create(shared: SharedBackend, worker: int, start_at: float, tenant: str) -> int:
    """Try to create a policy for the pair at the common start; 1 if this process got it."""
    from acteon.quotas import QuotaPolicyConflict

    async def main() -> int:
        state = shared.open_state()
        async with state, AsyncGateway(state=state, background=False) as gw:
            await wait_until(start_at)
            try:
                await gw.create_quota_policy({"namespace": "mp", "tenant": tenant, "max_actions": 5,
                                              "window": "daily", "overage_behavior": "warn"})
            except QuotaPolicyConflict:
                return 0
            return 1

    return asyncio.run(main())
