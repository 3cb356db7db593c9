"""DiscordProvider against a loopback HTTP server standing in for a channel webhook."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from acteon._exceptions import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderExecutionFailed,
    ProviderRateLimited,
    ProviderSerializationError,
)
from acteon.providers._registry import build_provider
from acteon.providers.discord import DiscordProvider

from ._api import captured, closing
from .conftest import make_action

pytestmark = pytest.mark.anyio
__all__ = ["closing"]

Keep = Callable[[Any], Any]
PATH = "/api/webhooks/1/tok"


def _discord(server: HTTPServer, keep: Keep, **options: Any) -> DiscordProvider:
    provider: DiscordProvider = keep(DiscordProvider("discord", webhook_url=server.url_for(PATH), **options))
    return provider


async def test_content_with_204_answer(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=204)
    provider = _discord(httpserver, closing, default_username="acteon")

    response = await provider.execute(make_action({"content": "build green", "tts": False}))

    assert response.body == {"ok": True}
    (request,) = captured(httpserver)
    assert request.args.get("wait") is None
    assert json.loads(request.get_data()) == {"content": "build green", "username": "acteon", "tts": False}


async def test_embeds_with_wait_return_message_ids(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request(PATH, query_string="wait=true").respond_with_json(
        {"id": "m-1", "channel_id": "c-1", "content": ""}
    )
    provider = _discord(httpserver, closing, wait=True)
    embed = {
        "title": "Alert",
        "description": "cpu",
        "color": 16711680,
        "fields": [{"name": "host", "value": "a", "inline": True}],
        "footer": {"text": "acteon"},
        "timestamp": "2026-01-01T00:00:00Z",
    }

    response = await provider.execute(make_action({"embeds": [embed], "username": "bot", "avatar_url": "https://a/x.png"}))

    assert response.body == {"ok": True, "id": "m-1", "channel_id": "c-1"}
    assert json.loads(captured(httpserver)[0].get_data()) == {
        "username": "bot",
        "avatar_url": "https://a/x.png",
        "embeds": [embed],
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"username": "x"}, "needs 'content' or 'embeds'"),
        ({"embeds": {}}, "'embeds' must be an array"),
        ({"embeds": [{"colour": 1}]}, r"embeds\[0\] has unknown field\(s\): colour"),
        ({"embeds": [{"color": "red"}]}, r"embeds\[0\]\.color must be an integer"),
        ({"embeds": [{"fields": [{"name": "a"}]}]}, "'name' and 'value' strings"),
        ({"embeds": [{"footer": "x"}]}, "footer must be an object"),
        ({"content": "x", "tts": "yes"}, "'tts' must be true or false"),
    ],
)
async def test_payload_errors(httpserver: HTTPServer, closing: Keep, payload: Any, message: str) -> None:
    provider = _discord(httpserver, closing)
    with pytest.raises(ProviderSerializationError, match=message):
        await provider.execute(make_action(payload))
    assert captured(httpserver) == []


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ProviderRateLimited, True),
        (502, ProviderConnectionError, True),
        (425, ProviderConnectionError, True),
        (400, ProviderExecutionFailed, False),
        (401, ProviderExecutionFailed, False),
    ],
)
async def test_status_classification(
    httpserver: HTTPServer, closing: Keep, status: int, error: type[ProviderError], retryable: bool
) -> None:
    httpserver.expect_request(PATH).respond_with_json({"message": "nope", "code": 0}, status=status)
    provider = _discord(httpserver, closing)

    with pytest.raises(error) as info:
        await provider.execute(make_action({"content": "x"}))

    assert info.value.retryable is retryable


async def test_health_check_gets_the_webhook(httpserver: HTTPServer, closing: Keep) -> None:
    provider = _discord(httpserver, closing)
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json({"id": "1", "type": 1})
    await provider.health_check()
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json({"message": "Unknown Webhook"}, status=404)
    with pytest.raises(ProviderExecutionFailed, match="HTTP 404"):
        await provider.health_check()


def test_built_from_config_with_upstream_aliases() -> None:
    provider = build_provider(
        {"name": "d", "type": "discord", "url": "https://discord.com/api/webhooks/1/t", "default_channel": "bot"}
    )
    assert isinstance(provider, DiscordProvider)
    with pytest.raises(ConfigurationError, match="'wait' must be true or false"):
        build_provider({"name": "d", "type": "discord", "url": "https://discord.com/x", "wait": "yes"})
