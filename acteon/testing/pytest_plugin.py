"""pytest plugin (entry point ``pytest11``): fixtures for testing rules and dispatch code.

* ``fake_clock`` -- a :class:`~acteon.testing.FakeClock` at 2026-01-15T12:00:00Z.
* ``recording_provider`` -- a :class:`~acteon.testing.RecordingProvider` named ``recorder``.
* ``acteon_gateway`` -- a started blocking :class:`~acteon.Gateway` on memory stores with the
  fake clock and the recording provider, no background loop. Override the
  ``acteon_rules`` fixture (YAML text, a path or a RuleSet) and ``acteon_providers``
  to customise it.
* ``acteon_async_gateway`` -- the same as an :class:`~acteon.AsyncGateway` (for async tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from acteon.testing._clock import FakeClock
from acteon.testing._providers import RecordingProvider


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recording_provider() -> RecordingProvider:
    return RecordingProvider("recorder")


@pytest.fixture
def acteon_rules() -> Any:
    """Rules for ``acteon_gateway``; override in your conftest or module."""
    return None


@pytest.fixture
def acteon_providers(recording_provider: RecordingProvider) -> list[Any]:
    return [recording_provider]


@pytest.fixture
def acteon_gateway(acteon_rules: Any, acteon_providers: list[Any], fake_clock: FakeClock) -> Iterator[Any]:
    from acteon import Gateway
    from acteon.audit import MemoryAuditStore

    with Gateway(
        rules=acteon_rules,
        audit=MemoryAuditStore(),
        providers=acteon_providers,
        clock=fake_clock,
        background=False,
    ) as gw:
        yield gw


@pytest.fixture
async def acteon_async_gateway(
    acteon_rules: Any, acteon_providers: list[Any], fake_clock: FakeClock
) -> AsyncIterator[Any]:
    from acteon import AsyncGateway
    from acteon.audit import MemoryAuditStore

    async with AsyncGateway(
        rules=acteon_rules,
        audit=MemoryAuditStore(),
        providers=acteon_providers,
        clock=fake_clock,
        background=False,
    ) as gw:
        yield gw
