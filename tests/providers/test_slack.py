"""SlackProvider against a loopback HTTP server standing in for the Slack Web API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from acteon._exceptions import (
    ConfigurationError,
    ProviderConfigurationError,
    ProviderConnectionError,
    ProviderExecutionFailed,
    ProviderRateLimited,
    ProviderSerializationError,
)
from acteon.providers._http import ApiStatusError, ApiUnavailable
from acteon.providers._registry import build_provider
from acteon.providers.slack import SlackProvider

from ._api import captured, closing
from .conftest import make_action

pytestmark = pytest.mark.anyio
__all__ = ["closing"]

Keep = Callable[[Any], Any]


def _slack(server: HTTPServer, keep: Keep, **options: Any) -> SlackProvider:
    options.setdefault("token", "xoxb-test")
    options.setdefault("api_base_url", server.url_for("/api"))
    provider: SlackProvider = keep(SlackProvider("slack", **options))
    return provider


async def test_posts_message_with_bearer_token(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": True, "channel": "C123", "ts": "1700000000.000100", "message": {}}
    )
    provider = _slack(httpserver, closing)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]

    response = await provider.execute(make_action({"channel": "#ops", "text": "hi", "blocks": blocks}))

    assert response.status == "success"
    assert response.body == {"ok": True, "channel": "C123", "ts": "1700000000.000100"}
    (request,) = captured(httpserver)
    assert request.headers["Authorization"] == "Bearer xoxb-test"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {"channel": "#ops", "text": "hi", "blocks": blocks}


async def test_default_channel_and_absent_keys_omitted(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json({"ok": True, "channel": "C9", "ts": "1"})
    provider = _slack(httpserver, closing, default_channel="#alerts")

    await provider.execute(make_action({"text": "disk full"}))

    (request,) = captured(httpserver)
    assert json.loads(request.get_data()) == {"channel": "#alerts", "text": "disk full"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "x"}, "no channel specified in payload and no default channel configured"),
        ({"channel": "#a"}, "needs 'text' or 'blocks'"),
        ({"channel": 5, "text": "x"}, "'channel' must be a string"),
        ({"channel": "#a", "blocks": "nope"}, "'blocks' must be an array"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
async def test_payload_errors_are_serialization_errors(
    httpserver: HTTPServer, closing: Keep, payload: Any, message: str
) -> None:
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderSerializationError, match=message) as info:
        await provider.execute(make_action(payload))

    assert info.value.retryable is False
    assert captured(httpserver) == []


async def test_ok_false_is_execution_failure_with_error_code(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json({"ok": False, "error": "channel_not_found"})
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderExecutionFailed) as info:
        await provider.execute(make_action({"channel": "#gone", "text": "x"}))

    assert str(info.value) == "execution failed: channel_not_found"
    assert info.value.retryable is False


async def test_ok_false_without_code_is_unknown_error(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json({"ok": False})
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderExecutionFailed, match="unknown_error"):
        await provider.execute(make_action({"channel": "#a", "text": "x"}))


async def test_429_is_rate_limited_with_retry_after(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "30"}
    )
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderRateLimited) as info:
        await provider.execute(make_action({"channel": "#a", "text": "x"}))

    assert info.value.retryable is True
    assert info.value.retry_after == 30.0
    assert info.value.code == "RATE_LIMITED"


@pytest.mark.parametrize("status", [408, 425, 500, 502, 503])
async def test_retryable_statuses(httpserver: HTTPServer, closing: Keep, status: int) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data("upstream trouble", status=status)
    provider = _slack(httpserver, closing)

    with pytest.raises(ApiUnavailable) as info:
        await provider.execute(make_action({"channel": "#a", "text": "x"}))

    assert info.value.retryable is True
    assert info.value.status_code == status
    assert str(info.value) == f"connection error: HTTP {status}: upstream trouble"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_other_4xx_are_not_retryable(httpserver: HTTPServer, closing: Keep, status: int) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data("x" * 1000, status=status)
    provider = _slack(httpserver, closing)

    with pytest.raises(ApiStatusError) as info:
        await provider.execute(make_action({"channel": "#a", "text": "x"}))

    assert info.value.retryable is False
    assert isinstance(info.value, ProviderExecutionFailed)
    # The error body is cut to 256 bytes.
    assert str(info.value) == f"execution failed: HTTP {status}: " + "x" * 256 + "...[truncated]"


async def test_undecodable_success_body_is_connection_error(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data("<html>", status=200)
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderConnectionError):
        await provider.execute(make_action({"channel": "#a", "text": "x"}))


async def test_unreachable_server_is_connection_error(closing: Keep, closed_port: int) -> None:
    provider = closing(SlackProvider("slack", token="t", api_base_url=f"http://127.0.0.1:{closed_port}/api"))

    with pytest.raises(ProviderConnectionError) as info:
        await provider.execute(make_action({"channel": "#a", "text": "x"}))

    assert info.value.retryable is True


async def test_health_check_ok(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/auth.test", method="POST").respond_with_json({"ok": True, "team": "T"})
    provider = _slack(httpserver, closing)

    await provider.health_check()

    (request,) = captured(httpserver)
    assert request.headers["Authorization"] == "Bearer xoxb-test"


async def test_health_check_bad_token_is_configuration_error(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/api/auth.test").respond_with_json({"ok": False, "error": "invalid_auth"})
    provider = _slack(httpserver, closing)

    with pytest.raises(ProviderConfigurationError, match=r"Slack auth\.test failed: invalid_auth"):
        await provider.health_check()


async def test_health_check_statuses(httpserver: HTTPServer, closing: Keep) -> None:
    provider = _slack(httpserver, closing)
    httpserver.expect_oneshot_request("/api/auth.test").respond_with_data("", status=503)
    with pytest.raises(ProviderConnectionError, match="HTTP 503"):
        await provider.health_check()
    httpserver.expect_oneshot_request("/api/auth.test").respond_with_data("", status=429)
    with pytest.raises(ProviderRateLimited):
        await provider.health_check()


def test_built_from_config() -> None:
    provider = build_provider(
        {"name": "chat", "type": "slack", "token": "xoxb-1", "default_channel": "#a",
         "api_base_url": "http://127.0.0.1:9/api"}
    )
    assert isinstance(provider, SlackProvider)
    assert provider.name == "chat"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "token"),
        ({"token": ""}, "'token' must be a non-empty string"),
        ({"token": "t", "api_base_url": "ftp://x"}, "api_base_url"),
        ({"token": "t", "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_config_is_reported(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_provider({"name": "chat", "type": "slack", **options})


async def test_aclose_is_idempotent() -> None:
    provider = SlackProvider("slack", token="t")
    await provider.aclose()
    await provider.aclose()
    assert provider._client.is_closed
