"""``teams`` provider: post to a Microsoft Teams incoming webhook.

The payload carries either an ``adaptive_card`` (sent as a message with one
Adaptive Card attachment) or ``text`` with optional ``title``, ``summary`` and
``theme_color`` (sent as a legacy MessageCard). See docs/providers.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from acteon._action import Action
from acteon._exceptions import ConfigurationError, ProviderSerializationError
from acteon._response import ProviderResponse
from acteon.providers._http import (
    HttpApiProvider,
    TimeSource,
    config_url,
    optional_str,
    payload_object,
)

ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"


class TeamsProvider(HttpApiProvider):
    """Send actions to a Teams channel through its incoming-webhook URL.

    Args:
        name: registry name of the provider.
        webhook_url: the incoming-webhook URL (``url`` is accepted as an alias).
        timeout_seconds, client, clock: see :class:`~acteon.providers._http.HttpApiProvider`.
    """

    kind = "teams"

    def __init__(
        self,
        name: str = "teams",
        *,
        webhook_url: str | None = None,
        url: str | None = None,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        where = f"teams provider '{name}'"
        target = webhook_url if webhook_url is not None else url
        if target is None:
            raise ConfigurationError(f"{where} needs a 'webhook_url'")
        self._url = config_url(target, where, "webhook_url")
        super().__init__(name, timeout_seconds=timeout_seconds, client=client, clock=clock)

    def build_message(self, payload: Any) -> dict[str, Any]:
        """The webhook body for a payload (validation errors are serialization errors)."""
        data = payload_object(payload, "teams")
        card = data.get("adaptive_card")
        if card is not None:
            if not isinstance(card, Mapping):
                raise ProviderSerializationError("teams payload field 'adaptive_card' must be an object")
            return {
                "type": "message",
                "attachments": [{"contentType": ADAPTIVE_CARD_TYPE, "content": dict(card)}],
            }
        text = optional_str(data, "text", "teams")
        if text is None:
            raise ProviderSerializationError("teams payload needs 'text' or 'adaptive_card'")
        message: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
        }
        title = optional_str(data, "title", "teams")
        if title is not None:
            message["title"] = title
        message["text"] = text
        summary = optional_str(data, "summary", "teams")
        if summary is not None:
            message["summary"] = summary
        color = optional_str(data, "theme_color", "teams")
        if color is not None:
            message["themeColor"] = color
        return message

    async def execute(self, action: Action) -> ProviderResponse:
        message = self.build_message(action.payload)
        response, raw = await self.request("POST", self._url, json_body=message)
        self.raise_for_status(response, raw)
        return ProviderResponse(
            "success", {"ok": True, "response": raw.decode("utf-8", "replace")}, {}
        )

    async def health_check(self) -> None:
        """Healthy: Teams webhooks have no read-only probe, and posting would send a message."""
