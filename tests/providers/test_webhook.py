"""WebhookProvider against real loopback HTTP servers: bodies, templates, targets, failures."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from acteon._exceptions import (
    ConfigurationError,
    ProviderConfigurationError,
    ProviderConnectionError,
    ProviderExecutionFailed,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderSerializationError,
    ProviderTimeout,
)
from acteon.providers._registry import build_provider
from acteon.providers.webhook import WebhookHTTPError, WebhookProvider, WebhookRateLimited

from .conftest import FixedClock, ProviderFactory, make_action

pytestmark = pytest.mark.anyio


def _captured(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# --------------------------------------------------------------------------- success


async def test_posts_full_action_wire_json(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    action = make_action({"to": "user@example.com"}, metadata={"priority": "high"})
    httpserver.expect_request("/hook", method="POST", json=action.to_wire()).respond_with_json(
        {"ok": True, "id": 7}
    )
    provider = make_provider(httpserver.url_for("/hook"))

    response = await provider.execute(action)

    assert response.status == "success"
    assert response.body == {"ok": True, "id": 7}
    assert response.headers == {}
    (request,) = _captured(httpserver)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("acteon")
    # Compact JSON, exactly the wire form.
    assert request.get_data() == json.dumps(action.to_wire(), separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("status", "data"),
    [(200, "accepted"), (202, "<html>ok</html>"), (204, ""), (201, "   ")],
)
async def test_non_json_success_body_reports_status_code(
    httpserver: HTTPServer, make_provider: ProviderFactory, status: int, data: str
) -> None:
    httpserver.expect_request("/hook").respond_with_data(data, status=status, content_type="text/plain")
    provider = make_provider(httpserver.url_for("/hook"))

    response = await provider.execute(make_action())

    assert response.status == "success"
    assert response.body == {"status_code": status}


async def test_json_scalar_body_is_kept(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    httpserver.expect_request("/hook").respond_with_data("42", content_type="application/json")
    provider = make_provider(httpserver.url_for("/hook"))

    assert (await provider.execute(make_action())).body == 42


async def test_oversized_success_body_is_not_parsed(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_json({"blob": "x" * 5000})
    provider = make_provider(httpserver.url_for("/hook"), max_response_bytes=100)

    assert (await provider.execute(make_action())).body == {"status_code": 200}


async def test_response_headers_on_request(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    httpserver.expect_request("/hook").respond_with_json({}, headers={"X-Request-Id": "abc"})
    provider = make_provider(httpserver.url_for("/hook"), include_response_headers=True)

    response = await provider.execute(make_action())

    assert response.headers["x-request-id"] == "abc"
    assert response.headers["content-type"] == "application/json"


async def test_configured_headers_are_sent(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    httpserver.expect_request(
        "/hook", headers={"Authorization": "Bearer xyz", "X-Team": "ops"}
    ).respond_with_json({})
    provider = make_provider(
        httpserver.url_for("/hook"), headers={"Authorization": "Bearer xyz", "X-Team": "ops"}
    )

    assert (await provider.execute(make_action())).status == "success"


async def test_payload_only_mode(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    httpserver.expect_request("/hook", json={"message": "hello"}).respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"), payload_mode="payload_only")

    assert (await provider.execute(make_action())).status == "success"


# --------------------------------------------------------------------------- templates


async def test_templates_render_url_method_headers_and_typed_body(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    action = make_action(
        {"id": 42, "verb": "put", "name": "Ada", "obj": {"a": [1, 2]}, "flag": True, "items": ["x", "y"]},
        metadata={"team": "ops"},
    )
    expected_body = {
        "id": 42,
        "text": "hi Ada from tenant-1",
        "team": ["ops"],
        "obj": {"a": [1, 2]},
        "flag": True,
        "second": "y",
        "inline": 'obj={"a":[1,2]}',
        "literal": 3.5,
        "none": None,
    }
    httpserver.expect_request(
        "/items/42", method="PUT", query_string="by=Ada", headers={"X-Tenant": "tenant-1"}, json=expected_body
    ).respond_with_json({"ok": True})
    provider = make_provider(
        httpserver.url_for("/items/{{ payload.id }}") + "?by={{payload.name}}",
        method="{{ payload.verb }}",
        headers={"X-Tenant": "{{ action.tenant }}"},
        body_template={
            "id": "{{ payload.id }}",
            "text": "hi {{ payload.name }} from {{ action.tenant }}",
            "team": ["{{ metadata.team }}"],
            "obj": "{{ action.payload.obj }}",
            "flag": " {{ payload.flag }} ",
            "second": "{{ payload.items.1 }}",
            "inline": "obj={{ payload.obj }}",
            "literal": 3.5,
            "none": None,
        },
    )

    response = await provider.execute(action)

    assert response.body == {"ok": True}


async def test_url_placeholders_are_percent_encoded(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.environ.get("RAW_URI") or request.environ["REQUEST_URI"])
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/users/a/b", query_string={"q": "x&y=1"}).respond_with_handler(handler)
    provider = make_provider(httpserver.url_for("/users/{{ payload.user }}") + "?q={{ payload.q }}")

    await provider.execute(make_action({"user": "a/b", "q": "x&y=1"}))

    assert seen == ["/users/a%2Fb?q=x%26y%3D1"]


async def test_string_body_template_is_sent_verbatim(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook", data="alert for tenant-1: disk full").respond_with_data("ok")
    provider = make_provider(
        httpserver.url_for("/hook"),
        headers={"Content-Type": "text/plain"},
        body_template="alert for {{ action.tenant }}: {{ payload.message }}",
    )

    response = await provider.execute(make_action({"message": "disk full"}))

    assert response.body == {"status_code": 200}
    (request,) = _captured(httpserver)
    assert request.headers["Content-Type"] == "text/plain"


async def test_whole_action_placeholder(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    action = make_action()
    httpserver.expect_request("/hook", json={"event": action.to_wire()}).respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"), body_template={"event": "{{ action }}"})

    assert (await provider.execute(action)).status == "success"


async def test_missing_template_value_fails_without_sending(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    provider = make_provider(httpserver.url_for("/hook"), body_template={"x": "{{ payload.absent.deep }}"})

    with pytest.raises(ProviderExecutionFailed, match=r"payload\.absent\.deep") as info:
        await provider.execute(make_action())

    assert info.value.retryable is False
    assert httpserver.log == []


@pytest.mark.parametrize(
    "options",
    [
        {"body_template": {"x": "{{ payload.x | upper }}"}},
        {"body_template": {"x": "{{ __import__('os') }}"}},
        {"body_template": {"x": "{{ secrets.token }}"}},
        {"headers": {"X-A": "{{ action.nope }}"}},
        {"method": "TRACE"},
        {"method": "{{ payload.m }}", "body_template": {"x": object()}},
        {"expected_status": ["abc"]},
        {"expected_status": [700]},
        {"expected_status": [[300, 200]]},
        {"signing_secret": "whsec_!!!not-base64"},
        {"signing_secret": "whsec_"},
        {"headers": {"X-A": "a\r\nInjected: 1"}},
        {"timeout_seconds": 0},
        {"payload_mode": "everything"},
    ],
)
def test_bad_configuration_is_refused_when_built(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        WebhookProvider("hook", "http://127.0.0.1:9/hook", allow_private_targets=True, **options)


def test_url_is_required_unless_payload_chooses_it() -> None:
    with pytest.raises(ConfigurationError, match="needs a 'url'"):
        WebhookProvider("hook")


@pytest.mark.parametrize(
    "url",
    [
        "https://{{ payload.host }}/hook",
        "https://hooks.example.com{{ payload.rest }}",
        "{{ payload.url }}",
        "https://{{ action.tenant }}.hooks.example.com/x",
    ],
)
def test_payload_cannot_choose_host_through_templates(url: str) -> None:
    with pytest.raises(ConfigurationError, match="after the host"):
        WebhookProvider("hook", url)
    # ...unless payload targets are allowed on purpose.
    WebhookProvider("hook", url, allow_payload_target=True)


async def test_build_from_config_table(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", headers={"Authorization": "Bearer xyz"}).respond_with_json({"ok": 1})
    provider = build_provider(
        {
            "name": "ops-hook",
            "type": "webhook",
            "url": httpserver.url_for("/hook"),
            "headers": {"Authorization": "Bearer xyz"},
            "allow_private_targets": True,
            "expected_status": ["2xx"],
        }
    )
    try:
        assert isinstance(provider, WebhookProvider)
        assert provider.name == "ops-hook"
        assert (await provider.execute(make_action())).body == {"ok": 1}
    finally:
        await provider.aclose()

    with pytest.raises(ConfigurationError, match="urll"):
        build_provider({"name": "x", "type": "webhook", "urll": "http://example.com/"})


# --------------------------------------------------------------------------- payload target


async def test_payload_target_is_ignored_by_default(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    action = make_action(
        {"url": httpserver.url_for("/elsewhere"), "method": "PUT", "headers": {"X-Evil": "1"}, "body": "x"}
    )
    httpserver.expect_request("/hook", method="POST", json=action.to_wire()).respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"))

    assert (await provider.execute(action)).status == "success"
    (request,) = _captured(httpserver)
    assert request.path == "/hook"
    assert "X-Evil" not in request.headers


async def test_payload_target_overrides_config_when_allowed(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request(
        "/dynamic",
        method="PATCH",
        headers={"X-From-Payload": "yes", "X-Config": "overridden"},
        json={"title": "hi", "n": 1},
    ).respond_with_json({"patched": True})
    provider = make_provider(
        httpserver.url_for("/static"),
        headers={"X-Config": "config", "X-Keep": "kept"},
        allow_payload_target=True,
    )
    action = make_action(
        {
            "url": httpserver.url_for("/dynamic"),
            "method": "patch",
            "headers": {"X-From-Payload": "yes", "x-config": "overridden"},
            "body": {"title": "hi", "n": 1},
        }
    )

    response = await provider.execute(action)

    assert response.body == {"patched": True}
    (request,) = _captured(httpserver)
    assert request.headers["X-Keep"] == "kept"


async def test_payload_string_body_and_config_fallbacks(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/static", method="POST", data="raw text").respond_with_json({})
    provider = make_provider(httpserver.url_for("/static"), allow_payload_target=True)

    assert (await provider.execute(make_action({"body": "raw text"}))).status == "success"


async def test_payload_target_needs_a_url_from_somewhere(make_provider: ProviderFactory) -> None:
    provider = make_provider(None, allow_payload_target=True)

    with pytest.raises(ProviderConfigurationError, match="no url") as info:
        await provider.execute(make_action({"message": "no url"}))
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"method": "TRACE"}, "not one of"),
        ({"method": 5}, "must be a string"),
        ({"url": ["x"]}, "must be a string"),
        ({"headers": {"Host": "internal"}}, "not allowed"),
        ({"headers": {"Content-Length": "0"}}, "not allowed"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, "invalid value"),
        ({"headers": {"X-A": "caf\u00e9"}}, "invalid value"),
        ({"headers": {"X-A": 1}}, "object of strings"),
        ({"headers": ["X-A"]}, "object of strings"),
    ],
)
async def test_bad_payload_target_fields(
    httpserver: HTTPServer, make_provider: ProviderFactory, payload: dict[str, object], match: str
) -> None:
    provider = make_provider(httpserver.url_for("/hook"), allow_payload_target=True)

    with pytest.raises(ProviderExecutionFailed, match=match) as info:
        await provider.execute(make_action(payload))
    assert info.value.retryable is False
    assert httpserver.log == []


async def test_body_that_is_not_json_is_a_serialization_error(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    provider = make_provider(httpserver.url_for("/hook"), payload_mode="payload_only")

    with pytest.raises(ProviderSerializationError):
        await provider.execute(make_action({"value": float("nan")}))
    assert httpserver.log == []


# --------------------------------------------------------------------------- status classification


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (410, False),
        (422, False),
        (408, True),
        (425, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
async def test_error_statuses_are_classified(
    httpserver: HTTPServer, make_provider: ProviderFactory, status: int, retryable: bool
) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        '{"error":"nope"}', status=status, content_type="application/json"
    )
    provider = make_provider(httpserver.url_for("/hook"))

    with pytest.raises(ProviderHTTPError) as info:
        await provider.execute(make_action())

    error = info.value
    assert isinstance(error, WebhookHTTPError)
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.code == "HTTP_ERROR"
    assert error.body == {"error": "nope"}
    assert str(error) == f'http status {status}: {{"error":"nope"}}'


async def test_429_is_rate_limited_with_retry_after_seconds(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    provider = make_provider(httpserver.url_for("/hook"))

    with pytest.raises(ProviderRateLimited) as info:
        await provider.execute(make_action())

    error = info.value
    assert isinstance(error, WebhookRateLimited)
    assert error.retryable is True
    assert error.code == "RATE_LIMITED"
    assert error.retry_after == 7.0
    assert error.status_code == 429
    assert str(error) == "rate limited: http status 429: slow down"


async def test_429_retry_after_http_date_uses_the_clock(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    now = 1_700_000_000.0
    retry_at = format_datetime(datetime.fromtimestamp(now + 90, tz=UTC), usegmt=True)
    httpserver.expect_request("/hook").respond_with_data("", status=429, headers={"Retry-After": retry_at})
    provider = make_provider(httpserver.url_for("/hook"), clock=FixedClock(now))

    with pytest.raises(WebhookRateLimited) as info:
        await provider.execute(make_action())
    assert info.value.retry_after == pytest.approx(90.0)
    assert str(info.value) == "rate limited: http status 429"


@pytest.mark.parametrize(("header", "expected"), [("120", 120.0), ("soon", None), ("-5", 0.0)])
async def test_503_keeps_retry_after(
    httpserver: HTTPServer, make_provider: ProviderFactory, header: str, expected: float | None
) -> None:
    httpserver.expect_request("/hook").respond_with_data("busy", status=503, headers={"Retry-After": header})
    provider = make_provider(httpserver.url_for("/hook"))

    with pytest.raises(WebhookHTTPError) as info:
        await provider.execute(make_action())
    assert info.value.retryable is True
    assert info.value.retry_after == expected


async def test_error_body_is_truncated_in_messages(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_data("e" * 1000, status=500)
    provider = make_provider(httpserver.url_for("/hook"))

    with pytest.raises(WebhookHTTPError) as info:
        await provider.execute(make_action())

    assert str(info.value) == "http status 500: " + "e" * 256 + "...[truncated]"
    assert info.value.body == "e" * 256 + "...[truncated]"


async def test_redirects_are_not_followed(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/other")}
    )
    provider = make_provider(httpserver.url_for("/hook"))

    with pytest.raises(WebhookHTTPError) as info:
        await provider.execute(make_action())

    assert info.value.status_code == 302
    assert info.value.retryable is False
    assert [request.path for request in _captured(httpserver)] == ["/hook"]


@pytest.mark.parametrize(
    ("expected_status", "status", "ok"),
    [
        ([200], 200, True),
        ([200], 201, False),
        ([200, "404"], 404, True),
        ("2xx", 299, True),
        ("200-204", 203, True),
        ("200-204", 205, False),
        ([[200, 202], 410], 410, True),
        (range(200, 203), 202, True),
        (202, 202, True),
    ],
)
async def test_expected_status(
    httpserver: HTTPServer,
    make_provider: ProviderFactory,
    expected_status: object,
    status: int,
    ok: bool,
) -> None:
    httpserver.expect_request("/hook").respond_with_json({"s": status}, status=status)
    provider = make_provider(httpserver.url_for("/hook"), expected_status=expected_status)

    if ok:
        assert (await provider.execute(make_action())).body == {"s": status}
    else:
        with pytest.raises(WebhookHTTPError) as info:
            await provider.execute(make_action())
        assert info.value.status_code == status
        assert info.value.retryable is False


# --------------------------------------------------------------------------- transport failures


async def test_slow_server_times_out(slow_server: HTTPServer, make_provider: ProviderFactory) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    slow_server.expect_request("/slow").respond_with_handler(slow)
    provider = make_provider(slow_server.url_for("/slow"), timeout_seconds=0.2)

    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as info:
        await provider.execute(make_action())

    assert time.monotonic() - started < 0.9
    assert info.value.retryable is True
    assert info.value.code == "TIMEOUT"
    assert str(info.value) == "timeout after 200ms"


async def test_connection_refused(closed_port: int, make_provider: ProviderFactory) -> None:
    provider = make_provider(f"http://127.0.0.1:{closed_port}/hook")

    with pytest.raises(ProviderConnectionError) as info:
        await provider.execute(make_action())

    assert info.value.retryable is True
    assert info.value.code == "CONNECTION"
    assert f"127.0.0.1:{closed_port}" in str(info.value)


async def test_server_hanging_up_is_a_non_retryable_failure(
    hangup_port: int, make_provider: ProviderFactory
) -> None:
    provider = make_provider(f"http://127.0.0.1:{hangup_port}/hook")

    with pytest.raises(ProviderExecutionFailed) as info:
        await provider.execute(make_action())

    assert info.value.retryable is False
    assert re.search(r"127\.0\.0\.1:\d+: (ReadError|RemoteProtocolError)", str(info.value))


async def test_error_messages_do_not_leak_the_url_path(
    closed_port: int, make_provider: ProviderFactory
) -> None:
    provider = make_provider(f"http://127.0.0.1:{closed_port}/services/T000/B000/secret-token")

    with pytest.raises(ProviderConnectionError) as info:
        await provider.execute(make_action())
    assert "secret-token" not in str(info.value)


# --------------------------------------------------------------------------- trace context


async def test_trace_context_is_forwarded(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    httpserver.expect_request(
        "/hook", headers={"traceparent": traceparent, "tracestate": "vendor=1"}
    ).respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"))
    action = make_action(trace_context={"traceparent": traceparent, "tracestate": "vendor=1", "other": "x"})

    assert (await provider.execute(action)).status == "success"
    (request,) = _captured(httpserver)
    assert "other" not in request.headers


async def test_no_trace_headers_without_trace_context(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"))

    await provider.execute(make_action())

    (request,) = _captured(httpserver)
    assert "traceparent" not in request.headers
    assert "tracestate" not in request.headers


# --------------------------------------------------------------------------- health and lifecycle


@pytest.mark.parametrize("status", [200, 404, 503])
async def test_health_check_heads_the_url(
    httpserver: HTTPServer, make_provider: ProviderFactory, status: int
) -> None:
    httpserver.expect_request("/hook", method="HEAD").respond_with_data("", status=status)
    provider = make_provider(httpserver.url_for("/hook"))

    await provider.health_check()

    assert [request.method for request in _captured(httpserver)] == ["HEAD"]


async def test_health_check_transport_error(closed_port: int, make_provider: ProviderFactory) -> None:
    provider = make_provider(f"http://127.0.0.1:{closed_port}/hook")

    with pytest.raises(ProviderConnectionError, match="health check"):
        await provider.health_check()


async def test_health_check_timeout_is_a_connection_error(
    slow_server: HTTPServer, make_provider: ProviderFactory
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("")

    slow_server.expect_request("/slow", method="HEAD").respond_with_handler(slow)
    provider = make_provider(slow_server.url_for("/slow"), timeout_seconds=0.1)

    with pytest.raises(ProviderConnectionError):
        await provider.health_check()


async def test_health_check_without_fixed_url_is_a_no_op(make_provider: ProviderFactory) -> None:
    # Nothing fixed to probe: healthy, and no request is attempted (port 9 would refuse it).
    assert await make_provider(None, allow_payload_target=True).health_check() is None
    assert await make_provider("http://127.0.0.1:9/{{ payload.x }}").health_check() is None


async def test_own_client_is_closed_and_reused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_json({})
    provider = WebhookProvider("hook", httpserver.url_for("/hook"), allow_private_targets=True)
    client = provider._client

    await provider.execute(make_action())
    await provider.execute(make_action())
    assert provider._client is client

    await provider.aclose()
    await provider.aclose()  # idempotent
    assert client.is_closed


async def test_injected_client_is_used_and_left_open(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", headers={"X-Client": "mine"}).respond_with_json({"via": "client"})
    async with httpx.AsyncClient(headers={"X-Client": "mine"}) as client:
        provider = WebhookProvider(
            "hook", httpserver.url_for("/hook"), client=client, allow_private_targets=True
        )
        assert (await provider.execute(make_action())).body == {"via": "client"}
        await provider.aclose()
        assert not client.is_closed
