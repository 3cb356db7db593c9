"""TwilioProvider against a loopback HTTP server standing in for the Messages API."""

from __future__ import annotations

import base64
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
from acteon.providers.twilio import TwilioProvider

from ._api import captured, closing
from .conftest import make_action

pytestmark = pytest.mark.anyio
__all__ = ["closing"]

Keep = Callable[[Any], Any]
SID = "AC0123456789abcdef"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


def _twilio(server: HTTPServer, keep: Keep, **options: Any) -> TwilioProvider:
    options.setdefault("from_number", "+15550000000")
    provider: TwilioProvider = keep(
        TwilioProvider("twilio", account_sid=SID, auth_token="secret", api_base_url=server.url_for("/"), **options)
    )
    return provider


async def test_sends_form_with_basic_auth(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request(MESSAGES, method="POST").respond_with_json(
        {"sid": "SM1", "status": "queued", "error_code": None}, status=201
    )
    provider = _twilio(httpserver, closing)

    response = await provider.execute(
        make_action({"to": "+15551112222", "body": "hello", "media_url": "https://m.example/a.png"})
    )

    assert response.body == {"sid": "SM1", "status": "queued"}
    (request,) = captured(httpserver)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"{SID}:secret".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.form.to_dict() == {
        "To": "+15551112222",
        "From": "+15550000000",
        "Body": "hello",
        "MediaUrl": "https://m.example/a.png",
    }


async def test_payload_from_overrides_config(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request(MESSAGES).respond_with_json({"sid": "SM2", "status": "queued"}, status=201)
    provider = _twilio(httpserver, closing)

    await provider.execute(make_action({"to": "+1", "body": "b", "from": "+19998887777"}))

    assert captured(httpserver)[0].form["From"] == "+19998887777"


@pytest.mark.parametrize(
    ("payload", "options", "message"),
    [
        ({"body": "b"}, {}, "needs 'to'"),
        ({"to": "+1"}, {}, "needs 'body'"),
        ({"to": "+1", "body": "b"}, {"from_number": None}, "no 'from' in payload and no from_number configured"),
        ({"to": ["+1"], "body": "b"}, {}, "'to' must be a string"),
    ],
)
async def test_payload_errors(
    httpserver: HTTPServer, closing: Keep, payload: Any, options: dict[str, Any], message: str
) -> None:
    provider = _twilio(httpserver, closing, **options)
    with pytest.raises(ProviderSerializationError, match=message):
        await provider.execute(make_action(payload))
    assert captured(httpserver) == []


async def test_error_code_in_body_is_execution_failure(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request(MESSAGES).respond_with_json(
        {"sid": "SM3", "status": "failed", "error_code": 30003, "error_message": "Unreachable"}, status=201
    )
    provider = _twilio(httpserver, closing)

    with pytest.raises(ProviderExecutionFailed, match="twilio error 30003: Unreachable"):
        await provider.execute(make_action({"to": "+1", "body": "b"}))


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ProviderRateLimited, True),
        (503, ProviderConnectionError, True),
        (408, ProviderConnectionError, True),
        (400, ProviderExecutionFailed, False),
        (401, ProviderExecutionFailed, False),
    ],
)
async def test_status_classification(
    httpserver: HTTPServer, closing: Keep, status: int, error: type[ProviderError], retryable: bool
) -> None:
    httpserver.expect_request(MESSAGES).respond_with_json({"code": 21211, "message": "bad"}, status=status)
    provider = _twilio(httpserver, closing)

    with pytest.raises(error) as info:
        await provider.execute(make_action({"to": "+1", "body": "b"}))

    assert info.value.retryable is retryable


async def test_health_check_gets_the_account(httpserver: HTTPServer, closing: Keep) -> None:
    provider = _twilio(httpserver, closing)
    path = f"/2010-04-01/Accounts/{SID}.json"
    httpserver.expect_oneshot_request(path, method="GET").respond_with_json({"sid": SID, "status": "active"})
    await provider.health_check()
    assert captured(httpserver)[0].headers["Authorization"].startswith("Basic ")
    httpserver.expect_oneshot_request(path, method="GET").respond_with_json({"code": 20003}, status=401)
    with pytest.raises(ProviderExecutionFailed, match="HTTP 401"):
        await provider.health_check()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_token": "t"}, "account_sid"),
        ({"account_sid": "AC1"}, "auth_token"),
        ({"account_sid": "AC1/../x", "auth_token": "t"}, "letters and digits only"),
    ],
)
def test_bad_config_is_reported(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_provider({"name": "sms", "type": "twilio", **options})


def test_built_from_config() -> None:
    provider = build_provider({"name": "sms", "type": "twilio", "account_sid": "AC1", "auth_token": "t"})
    assert isinstance(provider, TwilioProvider)
