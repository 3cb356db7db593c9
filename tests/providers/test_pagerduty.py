"""PagerDutyProvider against a loopback HTTP server standing in for Events API v2."""

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
from acteon.providers._http import ApiUnavailable
from acteon.providers._registry import build_provider
from acteon.providers.pagerduty import PagerDutyProvider

from ._api import captured, closing
from .conftest import make_action

pytestmark = pytest.mark.anyio
__all__ = ["closing"]

Keep = Callable[[Any], Any]
ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": "dk-1"}


def _pd(server: HTTPServer, keep: Keep, **options: Any) -> PagerDutyProvider:
    options.setdefault("routing_keys", {"web": "RK-web", "db": "RK-db"})
    options.setdefault("default_service_id", "web")
    options.setdefault("api_base_url", server.url_for("/"))
    provider: PagerDutyProvider = keep(PagerDutyProvider("pagerduty", **options))
    return provider


async def test_trigger_sends_full_event(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue", method="POST").respond_with_json(ACCEPTED, status=202)
    provider = _pd(httpserver, closing)
    payload = {
        "event_action": "trigger",
        "service_id": "db",
        "summary": "replica lag",
        "severity": "critical",
        "component": "postgres",
        "group": "storage",
        "class": "lag",
        "dedup_key": "dk-1",
        "custom_details": {"lag_seconds": 42},
        "images": [{"src": "https://img.example/x.png"}],
        "links": [{"href": "https://runbook.example", "text": "runbook"}],
    }

    response = await provider.execute(make_action(payload))

    assert response.status == "success"
    assert response.body == ACCEPTED
    (request,) = captured(httpserver)
    assert "Authorization" not in request.headers
    assert json.loads(request.get_data()) == {
        "routing_key": "RK-db",
        "event_action": "trigger",
        "dedup_key": "dk-1",
        "payload": {
            "summary": "replica lag",
            "source": "acteon",
            "severity": "critical",
            "component": "postgres",
            "group": "storage",
            "class": "lag",
            "custom_details": {"lag_seconds": 42},
        },
        "images": [{"src": "https://img.example/x.png"}],
        "links": [{"href": "https://runbook.example", "text": "runbook"}],
    }


async def test_trigger_defaults_and_omitted_optionals(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_json(ACCEPTED, status=202)
    provider = _pd(httpserver, closing, default_severity="warning", default_source="prod")

    await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))

    (request,) = captured(httpserver)
    assert json.loads(request.get_data()) == {
        "routing_key": "RK-web",
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "prod", "severity": "warning"},
    }


@pytest.mark.parametrize("event_action", ["acknowledge", "resolve"])
async def test_acknowledge_and_resolve_send_only_the_key(
    httpserver: HTTPServer, closing: Keep, event_action: str
) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_json(ACCEPTED, status=202)
    provider = _pd(httpserver, closing)

    await provider.execute(make_action({"event_action": event_action, "dedup_key": "dk-1", "summary": "ignored"}))

    (request,) = captured(httpserver)
    assert json.loads(request.get_data()) == {
        "routing_key": "RK-web",
        "event_action": event_action,
        "dedup_key": "dk-1",
    }


async def test_single_service_needs_no_default(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_json(ACCEPTED, status=202)
    provider = closing(PagerDutyProvider("pd", routing_key="RK-only", api_base_url=httpserver.url_for("/")))

    await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))

    assert json.loads(captured(httpserver)[0].get_data())["routing_key"] == "RK-only"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"summary": "s"}, "needs 'event_action'"),
        (
            {"event_action": "page"},
            "invalid event_action 'page': must be 'trigger', 'acknowledge', or 'resolve'",
        ),
        ({"event_action": "trigger"}, "needs a 'summary'"),
        ({"event_action": "resolve"}, "needs a 'dedup_key'"),
        ({"event_action": "acknowledge"}, "needs a 'dedup_key'"),
        ({"event_action": "trigger", "summary": 3}, "'summary' must be a string"),
        ({"event_action": "trigger", "summary": "s", "links": [{"text": "x"}]}, "'links' must be an array"),
        ("text", "must be a JSON object"),
    ],
)
async def test_payload_errors_are_serialization_errors(
    httpserver: HTTPServer, closing: Keep, payload: Any, message: str
) -> None:
    provider = _pd(httpserver, closing)

    with pytest.raises(ProviderSerializationError) as info:
        await provider.execute(make_action(payload))

    assert message in str(info.value)
    assert captured(httpserver) == []


async def test_unknown_service_id_is_configuration_error_naming_only_the_id(
    httpserver: HTTPServer, closing: Keep
) -> None:
    provider = _pd(httpserver, closing)

    with pytest.raises(ProviderConfigurationError) as info:
        await provider.execute(make_action({"event_action": "trigger", "summary": "s", "service_id": "nope"}))

    assert str(info.value) == "invalid configuration: nope"


async def test_missing_default_service(httpserver: HTTPServer, closing: Keep) -> None:
    provider = _pd(httpserver, closing, default_service_id=None)
    with pytest.raises(ProviderConfigurationError, match="no service_id in payload and no default service"):
        await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))
    stale = _pd(httpserver, closing, default_service_id="gone")
    with pytest.raises(ProviderConfigurationError) as info:
        await stale.execute(make_action({"event_action": "trigger", "summary": "s"}))
    assert str(info.value) == "invalid configuration: gone"


async def test_429_is_rate_limited(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_data("", status=429, headers={"Retry-After": "5"})
    provider = _pd(httpserver, closing)

    with pytest.raises(ProviderRateLimited) as info:
        await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))

    assert info.value.retry_after == 5.0


@pytest.mark.parametrize("status", [500, 503, 408])
async def test_5xx_is_retryable(httpserver: HTTPServer, closing: Keep, status: int) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_data("down", status=status)
    provider = _pd(httpserver, closing)

    with pytest.raises(ApiUnavailable) as info:
        await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))

    assert info.value.retryable is True


async def test_400_is_not_retryable(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_json(
        {"status": "invalid event", "errors": ["bad"]}, status=400
    )
    provider = _pd(httpserver, closing)

    with pytest.raises(ProviderExecutionFailed) as info:
        await provider.execute(make_action({"event_action": "trigger", "summary": "s"}))

    assert info.value.retryable is False
    assert str(info.value).startswith("execution failed: HTTP 400: ")


async def test_health_check_any_http_answer_is_healthy(httpserver: HTTPServer, closing: Keep) -> None:
    httpserver.expect_request("/v2/enqueue").respond_with_json({"status": "invalid event"}, status=400)
    provider = _pd(httpserver, closing)

    await provider.health_check()

    assert json.loads(captured(httpserver)[0].get_data()) == {}


async def test_health_check_unreachable(closing: Keep, closed_port: int) -> None:
    provider = closing(PagerDutyProvider("pd", routing_key="k", api_base_url=f"http://127.0.0.1:{closed_port}"))

    with pytest.raises(ProviderConnectionError):
        await provider.health_check()


def test_built_from_config() -> None:
    provider = build_provider({"name": "oncall", "type": "pagerduty", "routing_keys": {"a": "k"}})
    assert isinstance(provider, PagerDutyProvider)
    assert provider.name == "oncall"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs 'routing_keys'"),
        ({"routing_keys": {"a": 1}}, "routing_keys entry 'a'"),
        ({"routing_keys": ["a"]}, "must be a table"),
    ],
)
def test_bad_config_is_reported(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_provider({"name": "pd", "type": "pagerduty", **options})
