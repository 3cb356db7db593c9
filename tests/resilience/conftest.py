"""Helpers for the resilience tests: the §22 environment and shared stores.

Defaults of core-pipeline.md §22: providers ``email`` and ``sms-fallback``,
executor without retries, action ``notifications/tenant-1/email/send_email``.
``shared_store`` yields one started store of each backend (memory, SQLite
file, Redis with a random key prefix) for tests where several breakers or
gateways share one state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from acteon import Action, AsyncGateway
from acteon.providers._base import Provider
from acteon.state._base import StateStore
from acteon.state.memory import MemoryStateStore
from acteon.testing import FakeClock
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix

NO_RETRIES = {"executor": {"max_retries": 0, "timeout_seconds": 5, "max_concurrent": 10}}


def make_action(**overrides: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": "notifications",
        "tenant": "tenant-1",
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com"},
    }
    data.update(overrides)
    return Action(**data)


def gateway(
    providers: Iterable[Provider],
    circuit_breaker: Any = None,
    *,
    clock: FakeClock | None = None,
    state: StateStore | None = None,
    rules: Any = None,
    config: dict[str, Any] | None = None,
) -> AsyncGateway:
    return AsyncGateway(
        rules=rules,
        state=state if state is not None else MemoryStateStore(),
        providers=list(providers),
        config=config or NO_RETRIES,
        clock=clock or FakeClock(),
        background=False,
        circuit_breaker=circuit_breaker,
    )


@pytest.fixture(params=["memory", "sqlite", REDIS_PARAM])
async def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """One started store per backend; breakers use their own FakeClock, so no TTL depends on it."""
    backend = request.param
    if backend == "memory":
        async with MemoryStateStore() as store:
            yield store
    elif backend == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        async with SQLiteStateStore(tmp_path / "state.db") as sqlite_store:
            yield sqlite_store
    else:
        url = require_redis()
        from acteon.state.redis import RedisStateStore

        prefix = redis_prefix()
        try:
            async with RedisStateStore(url, prefix=prefix) as redis_store:
                yield redis_store
        finally:
            await _delete_prefix(url, prefix)
