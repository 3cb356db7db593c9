"""Bind the ``acteon.testing`` contracts to the bundled backends.

Each test module picks its backends with a parametrized ``backend`` fixture;
this file turns a backend name into a started, empty store and the matching
``time_control``:

- ``memory`` and ``sqlite`` run on a ``FakeClock`` (``FakeTimeControl``);
  ``sqlite`` uses a file under ``tmp_path``, ``sqlite-offload`` the same with
  every operation sent to a worker thread;
- ``redis`` runs on server time (``RealTimeControl``: TTLs scaled by 0.15 and
  real sleeps), uses a random key prefix per test and deletes only that
  prefix afterwards (never ``FLUSHDB``). It skips when Redis is unreachable
  (fails under ``ACTEON_REQUIRE_SERVICES=1``) or while the Redis backend
  module does not exist yet.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("acteon.testing._contracts")

from acteon.audit._base import AuditStore  # noqa: E402
from acteon.state._base import StateStore  # noqa: E402
from acteon.testing._clock import FakeClock  # noqa: E402
from acteon.testing._contracts import FakeTimeControl, RealTimeControl, TimeControl  # noqa: E402
from tests.conftest import require_redis  # noqa: E402

REDIS_PARAM = pytest.param("redis", marks=pytest.mark.redis)


@pytest.fixture
def time_control(backend: str) -> TimeControl:
    if backend == "redis":
        return RealTimeControl(scale=0.15)
    return FakeTimeControl(FakeClock())


def _import_redis(module: str, name: str) -> Any:
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("acteon."):
            pytest.skip("Redis backend not built yet")
        raise
    return getattr(mod, name)


async def _delete_prefix(url: str, prefix: str) -> None:
    """Remove every key this test wrote (keys start with the random prefix)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


def redis_prefix() -> str:
    return f"acteon-test-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def make_state_store(backend: str, tmp_path: Path, tc: TimeControl) -> AsyncIterator[StateStore]:
    """A started, empty state store of the named backend."""
    store: StateStore
    if backend == "memory":
        from acteon.state.memory import MemoryStateStore

        assert isinstance(tc, FakeTimeControl)
        store = MemoryStateStore(clock=tc.clock)
    elif backend in ("sqlite", "sqlite-offload"):
        from acteon.state.sqlite import SQLiteStateStore

        assert isinstance(tc, FakeTimeControl)
        store = SQLiteStateStore(tmp_path / "state.db", clock=tc.clock, offload=backend == "sqlite-offload")
    elif backend == "redis":
        url = require_redis()
        redis_store = _import_redis("acteon.state.redis", "RedisStateStore")
        prefix = redis_prefix()
        store = redis_store(url, prefix=prefix)
        try:
            async with store:
                yield store
        finally:
            await _delete_prefix(url, prefix)
        return
    else:  # pragma: no cover
        raise ValueError(backend)
    async with store:
        yield store


@asynccontextmanager
async def make_audit_store(backend: str, tmp_path: Path, tc: TimeControl) -> AsyncIterator[AuditStore]:
    """A started, empty audit store of the named backend."""
    store: AuditStore
    if backend == "memory":
        from acteon.audit.memory import MemoryAuditStore

        assert isinstance(tc, FakeTimeControl)
        store = MemoryAuditStore(clock=tc.clock)
    elif backend == "sqlite":
        from acteon.audit.sqlite import SQLiteAuditStore

        assert isinstance(tc, FakeTimeControl)
        store = SQLiteAuditStore(tmp_path / "audit.db", clock=tc.clock)
    elif backend == "redis":
        url = require_redis()
        redis_store = _import_redis("acteon.audit.redis", "RedisAuditStore")
        prefix = redis_prefix()
        store = redis_store(url, prefix=prefix)
        try:
            async with store:
                yield store
        finally:
            await _delete_prefix(url, prefix)
        return
    else:  # pragma: no cover
        raise ValueError(backend)
    async with store:
        yield store
