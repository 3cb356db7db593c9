"""Helpers shared by the HTTP integration tests (Slack, PagerDuty, Teams, Discord, Twilio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request

from acteon.providers._base import Provider

P = TypeVar("P", bound=Provider)


def captured(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[Any], Any]]:
    """Register providers to be closed when the test ends."""
    created: list[Provider] = []

    def keep(provider: P) -> P:
        created.append(provider)
        return provider

    yield keep
    for provider in created:
        await provider.aclose()
