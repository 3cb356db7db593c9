"""EmailProvider against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from acteon._exceptions import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderExecutionFailed,
    ProviderSerializationError,
)
from acteon.providers._registry import build_provider
from acteon.providers.email import EmailProvider, parse_mailbox

from .conftest import make_action

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

pytestmark = pytest.mark.anyio


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Handler:
    """Records delivered mail; ``rcpt_reply`` / ``data_reply`` script refusals."""

    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _provider(port: int, **options: Any) -> EmailProvider:
    options.setdefault("from_address", "Acteon <alerts@example.com>")
    return EmailProvider("email", smtp_host="127.0.0.1", smtp_port=port, tls=False, timeout_seconds=5, **options)


async def test_plain_text_mail(smtp: tuple[Handler, int]) -> None:
    handler, port = smtp
    provider = _provider(port)

    response = await provider.execute(
        make_action({"to": "Ops <ops@example.com>", "subject": "Disk full", "body": "node-3 is at 99%"})
    )

    assert response.status == "success"
    assert response.body == {"to": "Ops <ops@example.com>", "subject": "Disk full", "status": "sent"}
    (mail,) = handler.received
    assert mail.sender == "alerts@example.com"
    assert mail.recipients == ["ops@example.com"]
    assert mail.message["Subject"] == "Disk full"
    assert mail.message["From"] == "Acteon <alerts@example.com>"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == "node-3 is at 99%"


async def test_text_and_html_make_multipart_alternative_with_cc_bcc(smtp: tuple[Handler, int]) -> None:
    handler, port = smtp
    provider = _provider(port)

    await provider.execute(
        make_action(
            {
                "to": "a@example.com",
                "subject": "s",
                "body": "plain",
                "html_body": "<b>html</b>",
                "cc": "c@example.com",
                "bcc": "hidden@example.com",
                "reply_to": "r@example.com",
            }
        )
    )

    (mail,) = handler.received
    assert mail.recipients == ["a@example.com", "c@example.com", "hidden@example.com"]
    assert mail.message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in mail.message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert mail.message["Cc"] == "c@example.com"
    assert mail.message["Reply-To"] == "r@example.com"
    assert mail.message["Bcc"] is None


async def test_html_only_and_empty_bodies(smtp: tuple[Handler, int]) -> None:
    handler, port = smtp
    provider = _provider(port)

    await provider.execute(make_action({"to": "a@example.com", "subject": "h", "html_body": "<p>x</p>"}))
    await provider.execute(make_action({"to": "a@example.com", "subject": "e"}))

    html, empty = handler.received
    assert html.message.get_content_type() == "text/html"
    assert empty.message.get_content_type() == "text/plain"
    assert empty.message.get_content().strip() == ""


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        ({"subject": "s"}, ProviderSerializationError, "needs 'to'"),
        ({"to": "a@example.com"}, ProviderSerializationError, "needs 'subject'"),
        ({"to": "a@example.com", "subject": "s", "cc": ["b@example.com"]}, ProviderSerializationError, "'cc'"),
        ("text", ProviderSerializationError, "must be a JSON object"),
        ({"to": "not an address", "subject": "s"}, ProviderExecutionFailed, "invalid recipient address"),
        ({"to": "a@example.com", "subject": "s", "cc": "x@"}, ProviderExecutionFailed, "invalid CC address"),
        ({"to": "a@example.com", "subject": "s", "bcc": "a@b, c@d"}, ProviderExecutionFailed, "invalid BCC address"),
        (
            {"to": "a@example.com", "subject": "s", "reply_to": "@x"},
            ProviderExecutionFailed,
            "invalid reply-to address",
        ),
    ],
)
async def test_payload_errors(
    smtp: tuple[Handler, int], payload: Any, error: type[Exception], message: str
) -> None:
    handler, port = smtp
    provider = _provider(port)

    with pytest.raises(error, match=message):
        await provider.execute(make_action(payload))

    assert handler.received == []


async def test_4xx_reply_is_transient_and_retryable(smtp: tuple[Handler, int]) -> None:
    handler, port = smtp
    handler.rcpt_reply = "450 mailbox busy"
    provider = _provider(port)

    with pytest.raises(ProviderConnectionError, match="transient SMTP error") as info:
        await provider.execute(make_action({"to": "a@example.com", "subject": "s"}))

    assert info.value.retryable is True


async def test_5xx_reply_is_permanent(smtp: tuple[Handler, int]) -> None:
    handler, port = smtp
    handler.data_reply = "554 content rejected"
    provider = _provider(port)

    with pytest.raises(ProviderExecutionFailed, match="permanent SMTP error: 554") as info:
        await provider.execute(make_action({"to": "a@example.com", "subject": "s"}))

    assert info.value.retryable is False


async def test_unreachable_relay_is_connection_error() -> None:
    provider = _provider(_free_port())

    with pytest.raises(ProviderConnectionError, match="SMTP error") as info:
        await provider.execute(make_action({"to": "a@example.com", "subject": "s"}))

    assert info.value.retryable is True


async def test_starttls_against_a_plain_server_is_connection_error(smtp: tuple[Handler, int]) -> None:
    _, port = smtp
    provider = EmailProvider("email", smtp_host="127.0.0.1", smtp_port=port, tls=True, timeout_seconds=5)

    with pytest.raises(ProviderConnectionError, match="SMTP error"):
        await provider.execute(make_action({"to": "a@example.com", "subject": "s"}))


async def test_health_check(smtp: tuple[Handler, int]) -> None:
    _, port = smtp
    await _provider(port).health_check()
    with pytest.raises(ProviderConnectionError, match="SMTP health check failed"):
        await _provider(_free_port()).health_check()


def test_config() -> None:
    provider = build_provider({"name": "mail", "type": "email", "smtp_host": "mx", "from_address": "a@b.c"})
    assert isinstance(provider, EmailProvider)
    with pytest.raises(ConfigurationError, match="invalid from address"):
        build_provider({"name": "mail", "type": "email", "from_address": "nobody"})
    with pytest.raises(ConfigurationError, match="smtp_port"):
        build_provider({"name": "mail", "type": "email", "smtp_port": 0})
    with pytest.raises(ConfigurationError, match="only 'smtp'"):
        build_provider({"name": "mail", "type": "email", "email_backend": "ses"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a@example.com", "a@example.com"),
        ("Name <a@example.com>", "a@example.com"),
        ("noreply@localhost", "noreply@localhost"),
        ("a@example.com\r\nBcc: x@y.z", None),
        ("plain", None),
        ("a@@b", None),
        ("a@b..c", None),
    ],
)
def test_parse_mailbox(text: str, expected: str | None) -> None:
    assert parse_mailbox(text) == expected


def test_missing_aiosmtplib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from acteon._exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "aiosmtplib", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'acteon\[email\]'") as info:
        EmailProvider("email")
    assert info.value.extra == "email"
