"""Shared helpers of the scheduling tests: a gateway on a FakeClock with recording providers.

Defaults follow core-pipeline.md §22: providers ``email`` and ``sms-fallback``,
executor ``max_retries 0``, action ``notifications/tenant-1/email/send_email``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from acteon import Action, AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.state import MemoryStateStore
from acteon.state._base import StateStore
from acteon.testing import FakeClock, RecordingProvider
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix

NS, TENANT = "notifications", "tenant-1"
START = "2026-01-15T12:00:00Z"


def make_action(**overrides: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": NS,
        "tenant": TENANT,
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com"},
    }
    data.update(overrides)
    return Action(**data)


def rule(name: str, action: str, condition: str = "{all: []}", priority: int = 0) -> str:
    return f"  - {{name: {name}, priority: {priority}, condition: {condition}, action: {action}}}\n"


def rules_text(*rules: str) -> str:
    return "rules:\n" + "".join(rules)


DELAY_60 = rules_text(rule("delay-send", "{type: schedule, delay_seconds: 60}"))


class Env:
    """A started ``AsyncGateway`` (no background loop) on a ``FakeClock``."""

    def __init__(
        self,
        rules: str | None = None,
        *,
        state: StateStore | None = None,
        clock: FakeClock | None = None,
        config: dict[str, Any] | None = None,
        **gateway_kwargs: Any,
    ) -> None:
        self.clock = clock or FakeClock(START)
        self.email = RecordingProvider("email")
        self.sms = RecordingProvider("sms-fallback")
        self.audit = MemoryAuditStore()
        self.state = state or MemoryStateStore()
        cfg: dict[str, Any] = {"executor": {"max_retries": 0, "timeout_seconds": 5, "max_concurrent": 10}}
        cfg.update(config or {})
        gateway_kwargs.setdefault("providers", [self.email, self.sms])
        self.gw = AsyncGateway(
            rules=rules, state=self.state, audit=self.audit, config=cfg, clock=self.clock, background=False,
            **gateway_kwargs,
        )

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gw.__aexit__(None, None, None)

    def counters(self, *names: str) -> dict[str, int]:
        snap = self.gw.metrics.snapshot()
        return {n: snap[n] for n in names}

    async def advance(self, seconds: float) -> dict[str, int]:
        self.clock.advance(seconds)
        return dict(await self.gw.tick())


@pytest.fixture(params=["memory", "sqlite", REDIS_PARAM])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """A started, empty state store of each bundled backend (Redis with a private key prefix)."""
    store: StateStore
    if request.param == "memory":
        store = MemoryStateStore()
    elif request.param == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        store = SQLiteStateStore(tmp_path / "state.db")
    else:
        from acteon.state.redis import RedisStateStore

        url = require_redis()
        prefix = redis_prefix()
        store = RedisStateStore(url, prefix=prefix)
        try:
            async with store:
                yield store
        finally:
            await _delete_prefix(url, prefix)
        return
    async with store:
        yield store
