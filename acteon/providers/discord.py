"""``discord`` provider: post to a Discord channel webhook.

Payload: ``content`` and/or ``embeds``, plus optional ``username``,
``avatar_url`` and ``tts``. See docs/providers.md.
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

_EMBED_KEYS = frozenset({"title", "description", "color", "fields", "footer", "timestamp", "url"})


def _check_embeds(embeds: Any) -> list[dict[str, Any]]:
    if not isinstance(embeds, list):
        raise ProviderSerializationError("discord payload field 'embeds' must be an array")
    checked: list[dict[str, Any]] = []
    for index, embed in enumerate(embeds):
        where = f"discord embeds[{index}]"
        if not isinstance(embed, Mapping):
            raise ProviderSerializationError(f"{where} must be an object")
        unknown = sorted(set(embed) - _EMBED_KEYS)
        if unknown:
            raise ProviderSerializationError(f"{where} has unknown field(s): {', '.join(unknown)}")
        color = embed.get("color")
        if color is not None and (isinstance(color, bool) or not isinstance(color, int)):
            raise ProviderSerializationError(f"{where}.color must be an integer")
        fields = embed.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(
                isinstance(field, Mapping)
                and isinstance(field.get("name"), str)
                and isinstance(field.get("value"), str)
                for field in fields
            ):
                raise ProviderSerializationError(
                    f"{where}.fields must be an array of objects with 'name' and 'value' strings"
                )
        footer = embed.get("footer")
        if footer is not None and not (isinstance(footer, Mapping) and isinstance(footer.get("text"), str)):
            raise ProviderSerializationError(f"{where}.footer must be an object with a 'text' string")
        checked.append(dict(embed))
    return checked


class DiscordProvider(HttpApiProvider):
    """Send actions to a Discord channel through its webhook URL.

    Args:
        name: registry name of the provider.
        webhook_url: the channel webhook URL (``url`` is accepted as an alias).
        default_username: sender name used when the payload has no ``username``
            (``default_channel`` is accepted as an alias, as upstream's config names it).
        wait: ask Discord to answer with the created message (``?wait=true``),
            whose ``id`` and ``channel_id`` then appear in the success body.
        timeout_seconds, client, clock: see :class:`~acteon.providers._http.HttpApiProvider`.
    """

    kind = "discord"

    def __init__(
        self,
        name: str = "discord",
        *,
        webhook_url: str | None = None,
        url: str | None = None,
        default_username: str | None = None,
        default_channel: str | None = None,
        wait: bool = False,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        where = f"discord provider '{name}'"
        target = webhook_url if webhook_url is not None else url
        if target is None:
            raise ConfigurationError(f"{where} needs a 'webhook_url'")
        self._url = config_url(target, where, "webhook_url")
        username = default_username if default_username is not None else default_channel
        if username is not None and not isinstance(username, str):
            raise ConfigurationError(f"{where}: 'default_username' must be a string")
        if not isinstance(wait, bool):
            raise ConfigurationError(f"{where}: 'wait' must be true or false")
        super().__init__(name, timeout_seconds=timeout_seconds, client=client, clock=clock)
        self._username = username
        self._wait = wait

    def build_message(self, payload: Any) -> dict[str, Any]:
        """The webhook body for a payload (validation errors are serialization errors)."""
        data = payload_object(payload, "discord")
        content = optional_str(data, "content", "discord")
        embeds = None if data.get("embeds") is None else _check_embeds(data["embeds"])
        if content is None and not embeds:
            raise ProviderSerializationError("discord payload needs 'content' or 'embeds'")
        message: dict[str, Any] = {}
        if content is not None:
            message["content"] = content
        username = optional_str(data, "username", "discord") or self._username
        if username:
            message["username"] = username
        avatar = optional_str(data, "avatar_url", "discord")
        if avatar is not None:
            message["avatar_url"] = avatar
        tts = data.get("tts")
        if tts is not None:
            if not isinstance(tts, bool):
                raise ProviderSerializationError("discord payload field 'tts' must be true or false")
            message["tts"] = tts
        if embeds:
            message["embeds"] = embeds
        return message

    async def execute(self, action: Action) -> ProviderResponse:
        message = self.build_message(action.payload)
        params = {"wait": "true"} if self._wait else None
        response, raw = await self.request("POST", self._url, json_body=message, params=params)
        self.raise_for_status(response, raw)
        if response.status_code == 204 or not raw.strip():
            return ProviderResponse("success", {"ok": True}, {})
        body = self.decode_json(raw)
        if not isinstance(body, dict):
            return ProviderResponse("success", {"ok": True}, {})
        return ProviderResponse(
            "success", {"ok": True, "id": body.get("id"), "channel_id": body.get("channel_id")}, {}
        )

    async def health_check(self) -> None:
        """``GET`` the webhook URL (Discord answers with the webhook's details): non-2xx fails."""
        response, raw = await self.request("GET", self._url)
        self.raise_for_status(response, raw)
