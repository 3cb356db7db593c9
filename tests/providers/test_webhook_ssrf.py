"""The SSRF guard (DECISIONS D23): refused targets, the flag that allows them, connect-time vetting."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import httpx
import pytest
from pytest_httpserver import HTTPServer

from acteon._exceptions import ConfigurationError, ProviderConfigurationError, ProviderConnectionError
from acteon.providers._ssrf import (
    GuardedTransport,
    IPAddress,
    Resolver,
    TargetNotAllowed,
    check_url,
    forbidden_reason,
    vet_host,
)
from acteon.providers.webhook import WebhookProvider

from .conftest import ProviderFactory, make_action


def _static_resolver(*addresses: str, calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        return list(addresses)

    return resolve


# --------------------------------------------------------------------------- address policy


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", ""),
        ("100.64.0.1", "carrier-grade"),
        ("255.255.255.255", ""),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "127.0.0.1, which is a loopback"),
        ("::ffff:10.0.0.1", "10.0.0.1, which is a private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b:1::a00:1", "NAT64"),
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


# --------------------------------------------------------------------------- refused targets


REFUSED_TARGETS = [
    "http://10.0.0.1/hook",
    "http://10.255.1.2:8080/hook",
    "http://172.31.255.255/",
    "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://0.0.0.0/hook",
    "http://localhost/hook",
    "http://LOCALHOST:8080/hook",
    "http://api.localhost/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "https://[fd00::1]/hook",
    "http://224.0.0.251/",
]


@pytest.mark.anyio
@pytest.mark.parametrize("url", REFUSED_TARGETS)
async def test_payload_target_refused(url: str, make_provider: ProviderFactory) -> None:
    provider = make_provider(None, allow_payload_target=True, allow_private_targets=False)

    with pytest.raises(ProviderConfigurationError, match="refusing webhook target") as info:
        await provider.execute(make_action({"url": url}))

    assert isinstance(info.value, TargetNotAllowed)
    assert info.value.retryable is False
    assert info.value.code == "CONFIGURATION"
    assert "allow_private_targets" in str(info.value)


@pytest.mark.parametrize("url", REFUSED_TARGETS)
def test_static_private_url_is_refused_when_built(url: str) -> None:
    with pytest.raises(ConfigurationError, match="refusing webhook target"):
        WebhookProvider("hook", url)


@pytest.mark.anyio
async def test_loopback_server_is_refused_and_never_contacted(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_json({})
    port = httpserver.port
    provider = make_provider(None, allow_payload_target=True, allow_private_targets=False)

    for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook"):
        with pytest.raises(TargetNotAllowed):
            await provider.execute(make_action({"url": url}))

    assert httpserver.log == []


@pytest.mark.anyio
async def test_loopback_server_is_reachable_with_the_flag(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_json({"reached": True})
    provider = make_provider(None, allow_payload_target=True, allow_private_targets=True)

    response = await provider.execute(make_action({"url": f"http://127.0.0.1:{httpserver.port}/hook"}))

    assert response.body == {"reached": True}


@pytest.mark.anyio
@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("gopher://example.com/", "scheme 'gopher'"),
        ("http://user:secret@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("http:///nohost", "no host"),
    ],
)
async def test_scheme_and_credentials_are_always_refused(
    url: str, match: str, allow_private: bool, make_provider: ProviderFactory
) -> None:
    provider = make_provider(None, allow_payload_target=True, allow_private_targets=allow_private)

    with pytest.raises(TargetNotAllowed, match=match) as info:
        await provider.execute(make_action({"url": url}))
    assert "secret" not in str(info.value)

    with pytest.raises(ConfigurationError, match=match):
        WebhookProvider("hook", url, allow_private_targets=allow_private)


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.0.0.1"])
async def test_odd_spellings_of_loopback_are_caught_after_resolution(
    host: str, make_provider: ProviderFactory
) -> None:
    provider = make_provider(None, allow_payload_target=True, allow_private_targets=False)

    with pytest.raises(TargetNotAllowed, match=re.escape("127.0.0.1")):
        await provider.execute(make_action({"url": f"http://{host}:9/hook"}))


@pytest.mark.anyio
async def test_templated_url_is_checked_after_rendering(make_provider: ProviderFactory) -> None:
    provider = make_provider(
        "https://{{ payload.host }}/hook", allow_payload_target=True, allow_private_targets=False
    )

    with pytest.raises(TargetNotAllowed, match=re.escape("10.0.0.7")):
        await provider.execute(make_action({"host": "10.0.0.7"}))


# --------------------------------------------------------------------------- DNS names


@pytest.mark.anyio
@pytest.mark.parametrize(
    "addresses",
    [("10.0.0.5",), ("93.184.215.14", "127.0.0.1"), ("2606:4700::1111", "fe80::1"), ("::ffff:10.1.1.1",)],
)
async def test_name_resolving_to_any_private_address_is_refused(
    addresses: tuple[str, ...], make_provider: ProviderFactory
) -> None:
    provider = make_provider(
        "http://hooks.example.com/hook",
        allow_private_targets=False,
        resolver=_static_resolver(*addresses),
    )

    with pytest.raises(TargetNotAllowed, match=re.escape("'hooks.example.com' resolves to")):
        await provider.execute(make_action())


@pytest.mark.anyio
async def test_guard_checks_at_connect_time_and_sends_nothing(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_json({})
    calls: list[str] = []
    provider = make_provider(
        f"http://hooks.example.com:{httpserver.port}/hook",
        allow_private_targets=False,
        resolver=_static_resolver("127.0.0.1", calls=calls),
    )

    with pytest.raises(TargetNotAllowed, match=re.escape("127.0.0.1, which is a loopback")):
        await provider.execute(make_action())

    assert calls == ["hooks.example.com"]  # one lookup, done by the connection itself
    assert httpserver.log == []


@pytest.mark.anyio
async def test_injected_client_is_vetted_before_sending(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_json({})
    async with httpx.AsyncClient() as client:
        provider = WebhookProvider(
            "hook",
            f"http://hooks.example.com:{httpserver.port}/hook",
            client=client,
            resolver=_static_resolver("192.168.10.10"),
        )
        with pytest.raises(TargetNotAllowed, match=re.escape("192.168.10.10")):
            await provider.execute(make_action())
        with pytest.raises(TargetNotAllowed):
            await provider.health_check()
    assert httpserver.log == []


@pytest.mark.anyio
async def test_health_check_goes_through_the_guard(httpserver: HTTPServer) -> None:
    provider = WebhookProvider(
        "hook",
        f"http://hooks.example.com:{httpserver.port}/hook",
        resolver=_static_resolver("127.0.0.1"),
    )
    try:
        with pytest.raises(TargetNotAllowed):
            await provider.health_check()
    finally:
        await provider.aclose()
    assert httpserver.log == []


@pytest.mark.anyio
async def test_unresolvable_name_is_a_connection_error() -> None:
    async def nothing(host: str, port: int) -> Sequence[str]:
        return []

    provider = WebhookProvider("hook", "http://nowhere.example.com/hook", resolver=nothing)
    try:
        with pytest.raises(ProviderConnectionError, match="could not resolve") as info:
            await provider.execute(make_action())
        assert info.value.retryable is True
    finally:
        await provider.aclose()


# --------------------------------------------------------------------------- guarded transport


def _loopback_only(address: IPAddress) -> str | None:
    return None if str(address) == "127.0.0.1" else "not the test loopback address"


@pytest.mark.anyio
async def test_guarded_transport_connects_to_the_vetted_address(httpserver: HTTPServer) -> None:
    """The name never reaches the system resolver: the socket goes to the address we vetted."""
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    calls: list[str] = []
    transport = GuardedTransport(resolver=_static_resolver("127.0.0.1", calls=calls), policy=_loopback_only)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post(f"http://hooks.invalid:{httpserver.port}/hook", json={})
        again = await client.post(f"http://hooks.invalid:{httpserver.port}/hook", json={})

    assert response.json() == {"ok": True}
    assert again.status_code == 200
    (first, _second) = [request for request, _ in httpserver.log]
    assert first.headers["Host"] == f"hooks.invalid:{httpserver.port}"
    assert calls and set(calls) == {"hooks.invalid"}


@pytest.mark.anyio
async def test_guarded_transport_refuses_a_rebound_name(httpserver: HTTPServer) -> None:
    """A name whose answer turns private between requests is refused when the new connection opens."""
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    answers = [["127.0.0.1"], ["127.0.0.2"]]

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    transport = GuardedTransport(resolver=rebinding, policy=_loopback_only)
    async with httpx.AsyncClient(transport=transport) as client:
        first = await client.post(
            f"http://rebind.invalid:{httpserver.port}/hook", json={}, headers={"Connection": "close"}
        )
        assert first.status_code == 200
        with pytest.raises(TargetNotAllowed, match=re.escape("127.0.0.2")):
            await client.post(f"http://rebind.invalid:{httpserver.port}/hook", json={})

    assert len(httpserver.log) == 1


@pytest.mark.anyio
async def test_guarded_transport_maps_connect_errors(closed_port: int) -> None:
    transport = GuardedTransport(policy=_loopback_only)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{closed_port}/")


# --------------------------------------------------------------------------- helpers


@pytest.mark.anyio
async def test_vet_host_returns_every_vetted_address() -> None:
    addresses = await vet_host(
        "multi.example.com", 443, resolver=_static_resolver("93.184.215.14", "2606:4700::1111")
    )
    assert addresses == ["93.184.215.14", "2606:4700::1111"]
    assert await vet_host("8.8.8.8", 443) == ["8.8.8.8"]


def test_check_url_returns_the_parsed_url() -> None:
    parsed = check_url("https://hooks.example.com:8443/a?b=c", allow_private=False)
    assert parsed.host == "hooks.example.com"
    assert parsed.port == 8443
    assert check_url("http://127.0.0.1/", allow_private=True).host == "127.0.0.1"
