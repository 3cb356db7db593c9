"""A gateway on memory stores with a fake clock, for the grouping and state-machine tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acteon import Action, AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.state import MemoryStateStore
from acteon.state._base import StateStore
from acteon.testing import FakeClock, RecordingProvider

T0 = "2026-01-15T12:00:00Z"


def alert(**overrides: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": "ns",
        "tenant": "t1",
        "provider": "webhook",
        "action_type": "alert",
        "payload": {"n": 1},
        "metadata": {"cluster": "prod", "severity": "critical"},
    }
    data.update(overrides)
    return Action(**data)


class Env:
    """``async with Env(rules_yaml) as env``: ``env.gw``, ``env.clock``, providers ``webhook`` and ``slack``."""

    def __init__(
        self,
        rules: str | None = None,
        *,
        state: StateStore | None = None,
        state_machines: Sequence[dict[str, Any]] | None = None,
        start: str = T0,
    ) -> None:
        self.clock = FakeClock(start)
        self.webhook = RecordingProvider("webhook")
        self.slack = RecordingProvider("slack")
        self.audit = MemoryAuditStore()
        self.state = state if state is not None else MemoryStateStore()
        self.gw = AsyncGateway(
            rules=rules,
            state=self.state,
            audit=self.audit,
            providers=[self.webhook, self.slack],
            config={"executor": {"max_retries": 0, "timeout_seconds": 5}},
            clock=self.clock,
            background=False,
            state_machines=state_machines,
        )

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gw.__aexit__(None, None, None)

    async def advance(self, seconds: float) -> dict[str, int]:
        """Move the clock and run one tick."""
        self.clock.advance(seconds)
        return dict(await self.gw.tick())

    def notifications(self, provider: str = "webhook", action_type: str = "group_notification") -> list[Action]:
        rec = self.webhook if provider == "webhook" else self.slack
        return [a for a in rec.actions if a.action_type == action_type]
