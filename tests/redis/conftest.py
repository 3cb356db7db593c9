"""Fixtures for the Redis backend tests: a random key prefix per test, cleaned up after.

Only keys under the test's own prefix are deleted (SCAN + DEL); the database is
never flushed, so these tests can share a server with anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from acteon.audit.redis import RedisAuditStore
from acteon.state.redis import RedisStateStore

pytestmark = pytest.mark.redis


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = "acteon-test-" + uuid.uuid4().hex[:12]
    yield name
    delete_prefix(redis_url, name)


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisStateStore]:
    s = RedisStateStore(redis_url, prefix=prefix)
    async with s:
        yield s


@pytest.fixture
async def audit(redis_url: str, prefix: str) -> AsyncIterator[RedisAuditStore]:
    s = RedisAuditStore(redis_url, prefix=prefix)
    async with s:
        yield s


@pytest.fixture
def raw(redis_url: str) -> Iterator[object]:
    """A plain redis-py client on the test database (for inspecting keys)."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
