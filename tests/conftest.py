"""Shared test configuration.

Tests run on asyncio through anyio's pytest plugin. Services: Redis-backed tests
use ``ACTEON_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) and skip
with a reason when it is unreachable -- unless ``ACTEON_REQUIRE_SERVICES=1``
(set by ``.ci/run``), where an unreachable service fails the test instead.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("ACTEON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("ACTEON_REQUIRE_SERVICES") == "1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.5):
            return True
    except OSError:
        return False


def require_redis() -> str:
    """Return the test Redis URL, or skip (fail under ACTEON_REQUIRE_SERVICES=1)."""
    if _reachable(REDIS_URL):
        return REDIS_URL
    message = f"Redis not reachable at {REDIS_URL} (set ACTEON_TEST_REDIS_URL)"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and ACTEON_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    return require_redis()
