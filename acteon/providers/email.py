"""``email`` provider: send each action as a mail over SMTP (``aiosmtplib``, extra ``email``).

Payload: ``to`` and ``subject`` (required), ``body`` (text/plain),
``html_body`` (text/html), ``cc``, ``bcc`` and ``reply_to`` -- one address
each, ``Name <addr>`` allowed. See docs/providers.md and server-api.md §6.6.

``aiosmtplib`` runs on asyncio only, so this provider does too.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import anyio

from acteon._action import Action
from acteon._exceptions import (
    ConfigurationError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderExecutionFailed,
    ProviderSerializationError,
    ProviderTimeout,
)
from acteon._response import ProviderResponse
from acteon.providers._base import Provider
from acteon.providers._http import optional_str, payload_object

# Labels used in the "invalid ... address" texts, as upstream words them.
_ADDRESS_FIELDS = (("to", "recipient"), ("cc", "CC"), ("bcc", "BCC"), ("reply_to", "reply-to"))


def _import_aiosmtplib() -> Any:
    try:
        import aiosmtplib
    except ImportError as exc:
        raise MissingDependencyError("email", "the email provider") from exc
    return aiosmtplib


def parse_mailbox(text: str) -> str | None:
    """The bare address of ``addr`` or ``Name <addr>``; ``None`` when it is not one mailbox."""
    if any(char in text for char in "\r\n\0,"):
        return None
    _display, address = email.utils.parseaddr(text)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local or any(c.isspace() for c in address):
        return None
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    return address


class EmailProvider(Provider):
    """Send actions as e-mail through an SMTP relay.

    Args:
        name: registry name of the provider.
        smtp_host: relay host (default ``localhost``).
        smtp_port: relay port (default 587).
        username, password: SMTP AUTH credentials, used only when both are set
            (``smtp_password`` is accepted as an alias of ``password``).
        from_address: sender mailbox (default ``noreply@localhost``).
        tls: upgrade the connection with STARTTLS (default true); false sends in clear.
        timeout_seconds: deadline for one delivery, connect to final reply.
        validate_certs: verify the relay's TLS certificate (default true).
    """

    def __init__(
        self,
        name: str = "email",
        *,
        smtp_host: str = "localhost",
        smtp_port: int = 587,
        username: str | None = None,
        password: str | None = None,
        smtp_password: str | None = None,
        from_address: str = "noreply@localhost",
        tls: bool = True,
        timeout_seconds: float = 30.0,
        validate_certs: bool = True,
        email_backend: str = "smtp",
    ) -> None:
        where = f"email provider '{name}'"
        if email_backend != "smtp":
            raise ConfigurationError(f"{where}: email_backend '{email_backend}' is not supported (only 'smtp')")
        if not isinstance(smtp_host, str) or not smtp_host:
            raise ConfigurationError(f"{where}: 'smtp_host' must be a non-empty string")
        if isinstance(smtp_port, bool) or not isinstance(smtp_port, int) or not 0 < smtp_port < 65536:
            raise ConfigurationError(f"{where}: 'smtp_port' must be a port number (1-65535)")
        if not isinstance(tls, bool):
            raise ConfigurationError(f"{where}: 'tls' must be true or false")
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float) or not (
            timeout_seconds > 0
        ):
            raise ConfigurationError(f"{where}: timeout_seconds must be a positive number")
        if not isinstance(from_address, str) or parse_mailbox(from_address) is None:
            raise ConfigurationError(f"{where}: invalid from address: {from_address!r}")
        secret = password if password is not None else smtp_password
        self._smtp = _import_aiosmtplib()
        self.name = name
        self._host = smtp_host
        self._port = smtp_port
        self._credentials = (username, secret) if username and secret else None
        self._from = from_address
        self._tls = tls
        self._timeout = float(timeout_seconds)
        self._validate_certs = bool(validate_certs)

    def build_message(self, payload: Any) -> tuple[EmailMessage, list[str]]:
        """The MIME message and envelope recipients for a payload."""
        data: Mapping[str, Any] = payload_object(payload, "email")
        fields = {key: optional_str(data, key, "email") for key in ("to", "subject", "body", "html_body")}
        extra = {key: optional_str(data, key, "email") for key, _ in _ADDRESS_FIELDS[1:]}
        if fields["to"] is None:
            raise ProviderSerializationError("email payload needs 'to'")
        if fields["subject"] is None:
            raise ProviderSerializationError("email payload needs 'subject'")
        values = {"to": fields["to"], **extra}
        envelope: list[str] = []
        for key, label in _ADDRESS_FIELDS:
            value = values.get(key)
            if value is None:
                continue
            address = parse_mailbox(value)
            if address is None:
                raise ProviderExecutionFailed(f"invalid {label} address: {value!r}")
            if key != "reply_to":
                envelope.append(address)

        message = EmailMessage()
        message["From"] = self._from
        message["To"] = fields["to"]
        if extra["cc"] is not None:
            message["Cc"] = extra["cc"]
        if extra["reply_to"] is not None:
            message["Reply-To"] = extra["reply_to"]
        # Bcc stays out of the headers: it lives only in the envelope.
        message["Subject"] = fields["subject"]
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid()
        body, html = fields["body"], fields["html_body"]
        if body is not None:
            message.set_content(body)
            if html is not None:
                message.add_alternative(html, subtype="html")
        elif html is not None:
            message.set_content(html, subtype="html")
        else:
            message.set_content("")
        return message, envelope

    async def execute(self, action: Action) -> ProviderResponse:
        message, recipients = self.build_message(action.payload)
        smtp = self._smtp
        try:
            with anyio.fail_after(self._timeout):
                await smtp.send(
                    message,
                    sender=email.utils.parseaddr(self._from)[1],
                    recipients=recipients,
                    hostname=self._host,
                    port=self._port,
                    username=self._credentials[0] if self._credentials else None,
                    password=self._credentials[1] if self._credentials else None,
                    start_tls=self._tls,
                    use_tls=False,
                    validate_certs=self._validate_certs,
                    timeout=self._timeout,
                )
        except TimeoutError as exc:
            raise ProviderTimeout(self._timeout) from exc
        except smtp.SMTPRecipientsRefused as exc:
            first = exc.recipients[0] if exc.recipients else None
            code = first.code if first is not None else 550
            raise self._reply_error(code, str(first or exc)) from exc
        except smtp.SMTPResponseException as exc:
            raise self._reply_error(exc.code, f"{exc.code} {exc.message}") from exc
        except (smtp.SMTPException, OSError) as exc:
            raise ProviderConnectionError(f"SMTP error: {exc}") from exc
        return ProviderResponse(
            "success", {"to": message["To"], "subject": message["Subject"], "status": "sent"}, {}
        )

    @staticmethod
    def _reply_error(code: int, text: str) -> ProviderConnectionError | ProviderExecutionFailed:
        # 4xx replies are transient (retry later); 5xx are permanent (RFC 5321 §4.2.1).
        if 400 <= code < 500:
            return ProviderConnectionError(f"transient SMTP error: {text}")
        if code >= 500:
            return ProviderExecutionFailed(f"permanent SMTP error: {text}")
        return ProviderConnectionError(f"SMTP error: {text}")

    async def health_check(self) -> None:
        """Connect (with STARTTLS when configured), NOOP and QUIT; any failure is a connection error."""
        smtp = self._smtp
        client = smtp.SMTP(
            hostname=self._host,
            port=self._port,
            start_tls=self._tls,
            validate_certs=self._validate_certs,
            timeout=self._timeout,
        )
        try:
            with anyio.fail_after(self._timeout):
                await client.connect()
                try:
                    await client.noop()
                finally:
                    await client.quit()
        except (TimeoutError, smtp.SMTPException, OSError) as exc:
            raise ProviderConnectionError(f"SMTP health check failed: {exc}") from exc
