"""A gateway on memory stores with a fake clock and recording providers, for quota and cost tests."""

from __future__ import annotations

from typing import Any

from acteon import Action, AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.state import MemoryStateStore
from acteon.testing import FakeClock, RecordingProvider

START = "2026-02-10T14:30:00Z"


def act(tenant: str = "tenant-1", provider: str = "email", namespace: str = "ns", **extra: Any) -> Action:
    extra.setdefault("payload", {})
    return Action(namespace=namespace, tenant=tenant, provider=provider, action_type="send", **extra)


def quota(max_actions: int, behavior: Any = "block", window: Any = "hourly", tenant: str = "tenant-1",
          **extra: Any) -> dict[str, Any]:
    return {"namespace": "ns", "tenant": tenant, "max_actions": max_actions, "window": window,
            "overage_behavior": behavior, **extra}


class Env:
    """``async with Env(...) as env``: ``env.gw``, ``env.clock``, ``env.state``, ``env.audit``, providers by name."""

    def __init__(self, providers: tuple[str, ...] = ("email", "sms-fallback", "ops"), state: Any = None,
                 **gateway: Any) -> None:
        self.clock = FakeClock(START)
        self.state = state if state is not None else MemoryStateStore()
        self.audit = MemoryAuditStore()
        self.providers = {name: RecordingProvider(name) for name in providers}
        gateway.setdefault("config", {"executor": {"max_retries": 0}})
        self.gw = AsyncGateway(
            state=self.state, audit=self.audit, providers=list(self.providers.values()), clock=self.clock,
            background=False, **gateway,
        )

    def __getitem__(self, name: str) -> RecordingProvider:
        return self.providers[name]

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gw.__aexit__(None, None, None)

    def counters(self, *names: str) -> dict[str, int]:
        snap = self.gw.metrics.snapshot()
        return {n: snap[n] for n in names}

    async def run(self, count: int, **action: Any) -> list[str]:
        return [(await self.gw.dispatch(act(**action))).kind for _ in range(count)]
