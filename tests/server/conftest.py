"""A real gateway on memory stores behind the ASGI app, reached through httpx (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from acteon import AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.server import create_app
from acteon.testing import FakeClock, RecordingProvider

RULES = """\
rules:
  - name: block-spam
    priority: 1
    description: drop spam
    condition: {field: action.action_type, eq: spam}
    action: {type: suppress}
  - name: to-sms
    priority: 2
    condition: {field: action.action_type, eq: urgent}
    action: {type: reroute, target_provider: sms}
"""

Client = Callable[..., Any]


@asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[tuple[AsyncGateway, httpx.AsyncClient]]:
    kwargs.setdefault("rules", RULES)
    kwargs.setdefault("providers", [RecordingProvider("email"), RecordingProvider("sms")])
    kwargs.setdefault("audit", MemoryAuditStore())
    kwargs.setdefault("clock", FakeClock())
    async with AsyncGateway(background=False, **kwargs) as gw:
        transport = httpx.ASGITransport(app=create_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://acteon.test") as client:
            yield gw, client


@pytest.fixture
async def api() -> AsyncIterator[tuple[AsyncGateway, httpx.AsyncClient]]:
    async with serve() as pair:
        yield pair


def action(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"namespace": "notifications", "tenant": "tenant-1", "provider": "email",
                            "action_type": "send_email", "payload": {"to": "a@example.com"}}
    data.update(kw)
    return data


def assert_error(response: httpx.Response, status: int, code: str, contains: str = "") -> dict[str, Any]:
    """D5: JSON ``{"error", "code", "message"}`` with the upstream status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "code", "message"}
    assert body["code"] == code and body["error"] == body["message"]
    assert contains in body["message"]
    return body
