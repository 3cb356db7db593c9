"""Standard Webhooks signing: the published test vector, round trips and tamper detection."""

from __future__ import annotations

import base64
import secrets

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request

from acteon._exceptions import ConfigurationError
from acteon.providers._signing import decode_secret, message_id, sign
from acteon.providers.webhook import WebhookProvider, WebhookVerificationError, verify_webhook_signature

from .conftest import FixedClock, ProviderFactory, make_action

# peers.md §11 (from the reference library's tests)
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _only_request(server: HTTPServer) -> Request:
    (entry,) = server.log
    return entry[0]


def test_published_test_vector() -> None:
    key = decode_secret(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.encode()) == VECTOR_SIGNATURE


def test_vector_verifies() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    # verify_webhook_signature raises WebhookVerificationError on any mismatch.
    assert verify_webhook_signature(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP) is None
    # Names are matched case-insensitively; lists of pairs work as well as mappings.
    upper = [(name.upper(), value) for name, value in headers.items()]
    assert verify_webhook_signature(VECTOR_SECRET, upper, VECTOR_BODY.encode(), now=VECTOR_TIMESTAMP + 299) is None


def test_secret_decoding() -> None:
    raw = decode_secret(VECTOR_SECRET)
    assert decode_secret(VECTOR_SECRET.removeprefix("whsec_")) == raw
    assert decode_secret(VECTOR_SECRET.rstrip("=")) == raw  # padding may be missing
    assert decode_secret(b"raw-key") == b"raw-key"
    for bad in ("whsec_", "", "whsec_***", b""):
        with pytest.raises(ValueError):
            decode_secret(bad)


@pytest.mark.anyio
async def test_provider_reproduces_the_test_vector(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    httpserver.expect_request("/hook").respond_with_data("")
    provider = make_provider(
        httpserver.url_for("/hook"),
        body_template=VECTOR_BODY,
        signing_secret=VECTOR_SECRET,
        clock=FixedClock(VECTOR_TIMESTAMP + 0.75),
    )

    await provider.execute(make_action(id=VECTOR_ID))

    request = _only_request(httpserver)
    assert request.get_data(as_text=True) == VECTOR_BODY
    assert request.headers["webhook-id"] == VECTOR_ID
    assert request.headers["webhook-timestamp"] == str(VECTOR_TIMESTAMP)
    assert request.headers["webhook-signature"] == VECTOR_SIGNATURE
    assert "webhook-key-id" not in request.headers


@pytest.mark.anyio
async def test_round_trip_and_tampering(httpserver: HTTPServer, make_provider: ProviderFactory) -> None:
    secret = _new_secret()
    clock = FixedClock(1_750_000_000.0)
    httpserver.expect_request("/hook").respond_with_json({})
    provider = make_provider(httpserver.url_for("/hook"), signing_secret=secret, clock=clock)
    action = make_action({"amount": 12.5, "note": "caf\u00e9"})

    await provider.execute(action)

    request = _only_request(httpserver)
    headers = dict(request.headers.items())
    body = request.get_data()
    assert headers["Webhook-Id"] == action.id
    verify_webhook_signature(secret, headers, body, now=clock.now)
    verify_webhook_signature(secret, request.headers, body, now=clock.now)  # werkzeug's own headers

    tampered_body = body.replace(b"12.5", b"99.5")
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook_signature(secret, headers, tampered_body, now=clock.now)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook_signature(_new_secret(), headers, body, now=clock.now)
    shifted = dict(headers, **{"Webhook-Timestamp": str(int(clock.now) + 1)})
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook_signature(secret, shifted, body, now=clock.now)
    other_id = dict(headers, **{"Webhook-Id": "msg_other"})
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook_signature(secret, other_id, body, now=clock.now)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook_signature(secret, headers, body, now=clock.now + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook_signature(secret, headers, body, now=clock.now - 301)
    verify_webhook_signature(secret, headers, body, now=clock.now + 3600, tolerance=3600)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "missing header"),
        ({"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP)}, "webhook-signature"),
        (
            {
                "webhook-id": VECTOR_ID,
                "webhook-timestamp": "yesterday",
                "webhook-signature": VECTOR_SIGNATURE,
            },
            "not an integer",
        ),
        (
            {
                "webhook-id": VECTOR_ID,
                "webhook-timestamp": str(VECTOR_TIMESTAMP),
                "webhook-signature": "v2," + VECTOR_SIGNATURE[3:],
            },
            "no matching signature",
        ),
        (
            {
                "webhook-id": VECTOR_ID,
                "webhook-timestamp": str(VECTOR_TIMESTAMP),
                "webhook-signature": VECTOR_SIGNATURE.replace("g0h", "g1h"),
            },
            "no matching signature",
        ),
    ],
)
def test_verification_failures(headers: dict[str, str], match: str) -> None:
    with pytest.raises(WebhookVerificationError, match=match):
        verify_webhook_signature(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_unknown_versions_are_skipped_and_any_key_may_match() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": "v1a,AAAA v1,bogus= " + VECTOR_SIGNATURE,
    }
    verify_webhook_signature(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    verify_webhook_signature([_new_secret(), VECTOR_SECRET], headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="bad secret"):
        verify_webhook_signature("whsec_", headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.anyio
async def test_key_rotation_signs_with_every_secret(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    old, new = _new_secret(), _new_secret()
    httpserver.expect_request("/hook").respond_with_json({})
    clock = FixedClock(1_750_000_000.0)
    provider = make_provider(
        httpserver.url_for("/hook"), signing_secret=[new, old], signing_key_id="2026-q3", clock=clock
    )

    await provider.execute(make_action())

    request = _only_request(httpserver)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.headers["webhook-key-id"] == "2026-q3"
    for secret in (old, new):
        verify_webhook_signature(secret, request.headers, request.get_data(), now=clock.now)


@pytest.mark.anyio
async def test_id_is_stable_and_timestamp_is_per_attempt(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    secret = _new_secret()
    httpserver.expect_request("/hook").respond_with_json({})
    clock = FixedClock(1_750_000_000.0)
    provider = make_provider(httpserver.url_for("/hook"), signing_secret=secret, clock=clock)
    action = make_action(id="order.42/retry")

    await provider.execute(action)
    clock.now += 5
    await provider.execute(action)

    first, second = (request for request, _ in httpserver.log)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id("order.42/retry")
    assert first.headers["webhook-id"].startswith("msg_")
    assert "." not in first.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) == int(first.headers["webhook-timestamp"]) + 5
    for request in (first, second):
        verify_webhook_signature(secret, request.headers, request.get_data(), now=clock.now)


@pytest.mark.anyio
async def test_payload_headers_cannot_forge_signatures(
    httpserver: HTTPServer, make_provider: ProviderFactory
) -> None:
    secret = _new_secret()
    httpserver.expect_request("/hook").respond_with_json({})
    clock = FixedClock(1_750_000_000.0)
    provider = make_provider(
        httpserver.url_for("/hook"), signing_secret=secret, clock=clock, allow_payload_target=True
    )

    await provider.execute(make_action({"headers": {"webhook-signature": "v1,forged", "webhook-id": "x"}}))

    request = _only_request(httpserver)
    assert request.headers["webhook-signature"] != "v1,forged"
    verify_webhook_signature(secret, request.headers, request.get_data(), now=clock.now)


def test_message_id_passes_plain_ids_through() -> None:
    assert message_id("5f0c2d1e-0000-4000-8000-000000000000") == "5f0c2d1e-0000-4000-8000-000000000000"
    assert message_id("a.b") == message_id("a.b")
    assert message_id("a.b") != message_id("a_b")


@pytest.mark.parametrize("secret", ["whsec_", "whsec_%%%", ["whsec_"], []])
def test_bad_signing_secret_is_refused_when_built(secret: object) -> None:
    with pytest.raises(ConfigurationError, match="signing_secret"):
        WebhookProvider("hook", "https://hooks.example.com/", signing_secret=secret)  # type: ignore[arg-type]
