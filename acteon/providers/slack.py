"""``slack`` provider: post a message with the Web API's ``chat.postMessage``.

Payload: ``channel`` (falls back to ``default_channel``), ``text`` and/or
``blocks``. See docs/providers.md and server-api.md §6.7.
"""

from __future__ import annotations

from typing import Any

import httpx

from acteon._action import Action
from acteon._exceptions import (
    ConfigurationError,
    ProviderConfigurationError,
    ProviderConnectionError,
    ProviderExecutionFailed,
    ProviderSerializationError,
)
from acteon._response import ProviderResponse
from acteon.providers._http import HttpApiProvider, TimeSource, config_url, optional_str, payload_object

DEFAULT_API_BASE_URL = "https://slack.com/api"


class SlackProvider(HttpApiProvider):
    """Send actions to Slack as chat messages.

    Args:
        name: registry name of the provider.
        token: bot token (``xoxb-...``), sent as ``Authorization: Bearer``.
        default_channel: channel used when the payload names none.
        api_base_url: Web API root (default ``https://slack.com/api``).
        timeout_seconds, client, clock: see :class:`~acteon.providers._http.HttpApiProvider`.
    """

    kind = "slack"

    def __init__(
        self,
        name: str = "slack",
        *,
        token: str,
        default_channel: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        where = f"slack provider '{name}'"
        if not isinstance(token, str) or not token:
            raise ConfigurationError(f"{where}: 'token' must be a non-empty string")
        if default_channel is not None and (not isinstance(default_channel, str) or not default_channel):
            raise ConfigurationError(f"{where}: 'default_channel' must be a non-empty string")
        base = config_url(api_base_url, where, "api_base_url")
        super().__init__(name, timeout_seconds=timeout_seconds, client=client, clock=clock)
        self._token = token
        self._default_channel = default_channel
        self._base = base

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._token}"}

    def build_message(self, payload: Any) -> dict[str, Any]:
        """The ``chat.postMessage`` body for a payload (validation errors are serialization errors)."""
        data = payload_object(payload, "slack")
        channel = optional_str(data, "channel", "slack") or self._default_channel
        if not channel:
            raise ProviderSerializationError(
                "no channel specified in payload and no default channel configured"
            )
        text = optional_str(data, "text", "slack")
        blocks = data.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise ProviderSerializationError(
                f"slack payload field 'blocks' must be an array, got {type(blocks).__name__}"
            )
        if text is None and blocks is None:
            raise ProviderSerializationError("slack payload needs 'text' or 'blocks'")
        message: dict[str, Any] = {"channel": channel}
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        return message

    async def execute(self, action: Action) -> ProviderResponse:
        message = self.build_message(action.payload)
        response, raw = await self.request(
            "POST", f"{self._base}/chat.postMessage", json_body=message, headers=self._auth_headers()
        )
        self.raise_for_status(response, raw)
        body = self._decode_object(raw)
        if body.get("ok") is not True:
            raise ProviderExecutionFailed(str(body.get("error") or "unknown_error"))
        return ProviderResponse(
            "success", {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}, {}
        )

    async def health_check(self) -> None:
        """``auth.test`` with the token: a refused token is a configuration error."""
        response, raw = await self.request(
            "POST", f"{self._base}/auth.test", headers=self._auth_headers()
        )
        if response.status_code == 429:
            self.raise_for_status(response, raw)
        if not 200 <= response.status_code < 300:
            raise ProviderConnectionError(f"Slack auth.test: HTTP {response.status_code}")
        body = self._decode_object(raw)
        if body.get("ok") is not True:
            raise ProviderConfigurationError(
                f"Slack auth.test failed: {body.get('error') or 'unknown_error'}"
            )

    def _decode_object(self, raw: bytes) -> dict[str, Any]:
        body = self.decode_json(raw)
        if not isinstance(body, dict):
            raise ProviderConnectionError("slack response is not a JSON object")
        return body
