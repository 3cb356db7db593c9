"""The HTTP integrations inside a gateway: outcomes, retries and the DLQ follow D22."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from acteon import AsyncGateway, GatewayConfig
from acteon.outcomes import Executed, Failed
from acteon.providers import build_provider
from acteon.testing import FakeClock

from .conftest import make_action

pytestmark = pytest.mark.anyio


def _config() -> GatewayConfig:
    return GatewayConfig.model_validate(
        {"executor": {"max_retries": 2, "dlq_enabled": True, "retry": {"strategy": "constant", "base_ms": 1}}}
    )


async def _dispatch(server: HTTPServer) -> tuple[object, int]:
    chat = build_provider({"name": "hook", "type": "slack", "token": "t", "api_base_url": server.url_for("/api")})
    async with AsyncGateway(providers=[chat], config=_config(), clock=FakeClock(), background=False) as gw:
        outcome = await gw.dispatch(make_action({"channel": "#a", "text": "hi"}))
        dead = len(gw.dlq_list())
    await chat.aclose()
    return outcome, dead


async def test_success_is_executed_with_the_slack_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json({"ok": True, "channel": "C1", "ts": "9"})

    outcome, dead = await _dispatch(httpserver)

    assert isinstance(outcome, Executed)
    assert outcome.response.body == {"ok": True, "channel": "C1", "ts": "9"}
    assert dead == 0


async def test_5xx_is_retried_then_dead_lettered(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data("busy", status=503)

    outcome, dead = await _dispatch(httpserver)

    assert outcome == Failed("CONNECTION", "connection error: HTTP 503: busy", True, 3)
    assert len(httpserver.log) == 3
    assert dead == 1


async def test_4xx_fails_once_without_retry(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data("bad", status=400)

    outcome, dead = await _dispatch(httpserver)

    assert outcome == Failed("EXECUTION_FAILED", "execution failed: HTTP 400: bad", False, 1)
    assert len(httpserver.log) == 1
    assert dead == 0
