"""TeamsProvider against a loopback HTTP server standing in for an incoming webhook."""

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
from acteon.providers.teams import TeamsProvider

from ._api import captured, closing
from .conftest import make_action

pytestmark = pytest.mark.anyio
__all__ = ["closing"]

Keep = Callable[[Any], Any]


def _teams(server: HTTPServer, keep: Keep) -> TeamsProvider:
    provider: TeamsProvider = keep(TeamsProvider("teams", webhook_url=server.url_for("/webhookb2/abc")))
    return provider


async def test_text_becomes_message_card(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/webhookb2/abc", method="POST").respond_with_data("1")
    provider = _teams(httpserver, closing)

    response = await provider.execute(
        make_action({"text": "deploy done", "title": "Deploy", "summary": "ok", "theme_color": "00FF00"})
    )

    assert response.body == {"ok": True, "response": "1"}
    assert json.loads(captured(httpserver)[0].get_data()) == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "title": "Deploy",
        "text": "deploy done",
        "summary": "ok",
        "themeColor": "00FF00",
    }


async def test_adaptive_card_is_wrapped_as_attachment(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/webhookb2/abc").respond_with_data("")
    provider = _teams(httpserver, closing)
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "hi"}]}

    response = await provider.execute(make_action({"adaptive_card": card, "text": "ignored"}))

    assert response.body == {"ok": True, "response": ""}
    assert json.loads(captured(httpserver)[0].get_data()) == {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"title": "t"}, "needs 'text' or 'adaptive_card'"),
        ({"adaptive_card": "card"}, "'adaptive_card' must be an object"),
        ({"text": "x", "theme_color": 5}, "'theme_color' must be a string"),
    ],
)
async def test_payload_errors(httpserver: HTTPServer, closing: Keep, payload: Any, message: str) -> None:
    provider = _teams(httpserver, closing)
    with pytest.raises(ProviderSerializationError, match=message):
        await provider.execute(make_action(payload))
    assert captured(httpserver) == []


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ProviderRateLimited, True),
        (500, ProviderConnectionError, True),
        (408, ProviderConnectionError, True),
        (400, ProviderExecutionFailed, False),
        (404, ProviderExecutionFailed, False),
    ],
)
async def test_status_classification(
    httpserver: HTTPServer, closing: Keep, status: int, error: type[ProviderError], retryable: bool
) -> None:
    httpserver.expect_request("/webhookb2/abc").respond_with_data("nope", status=status)
    provider = _teams(httpserver, closing)

    with pytest.raises(error) as info:
        await provider.execute(make_action({"text": "x"}))

    assert info.value.retryable is retryable


async def test_health_check_does_not_post(httpserver: HTTPServer, closing: Keep) -> None:
    provider = _teams(httpserver, closing)
    await provider.health_check()
    assert captured(httpserver) == []


def test_built_from_config_with_url_alias() -> None:
    provider = build_provider({"name": "ms", "type": "teams", "url": "https://example.webhook.office.com/x"})
    assert isinstance(provider, TeamsProvider)
    with pytest.raises(ConfigurationError, match="needs a 'webhook_url'"):
        build_provider({"name": "ms", "type": "teams"})
