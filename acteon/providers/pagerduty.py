"""``pagerduty`` provider: trigger, acknowledge and resolve incidents with Events API v2.

See docs/providers.md and server-api.md §6.8 for the payload keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from acteon._action import Action
from acteon._exceptions import ConfigurationError, ProviderConfigurationError, ProviderSerializationError
from acteon._response import ProviderResponse
from acteon.providers._http import (
    HttpApiProvider,
    TimeSource,
    config_url,
    optional_str,
    payload_object,
)

DEFAULT_API_BASE_URL = "https://events.pagerduty.com"
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
# Optional trigger fields copied as-is into the event's inner ``payload`` object.
_PAYLOAD_EXTRAS = ("component", "group", "class")


class PagerDutyProvider(HttpApiProvider):
    """Send actions to PagerDuty as Events API v2 events.

    Args:
        name: registry name of the provider.
        routing_keys: service id -> integration (routing) key.
        routing_key: shorthand for a single service, registered as service id ``"default"``.
        default_service_id: service used when the payload names none.
        api_base_url: Events API root (default ``https://events.pagerduty.com``).
        default_severity: trigger severity when the payload has none (default ``"error"``).
        default_source: trigger source when the payload has none (default ``"acteon"``).
        timeout_seconds, client, clock: see :class:`~acteon.providers._http.HttpApiProvider`.
    """

    kind = "pagerduty"

    def __init__(
        self,
        name: str = "pagerduty",
        *,
        routing_keys: Mapping[str, str] | None = None,
        routing_key: str | None = None,
        default_service_id: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        default_severity: str = "error",
        default_source: str | None = None,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        where = f"pagerduty provider '{name}'"
        keys: dict[str, str] = {}
        if routing_keys is not None:
            if not isinstance(routing_keys, Mapping):
                raise ConfigurationError(f"{where}: 'routing_keys' must be a table of service_id = key")
            for service, key in routing_keys.items():
                if not isinstance(service, str) or not isinstance(key, str) or not service or not key:
                    raise ConfigurationError(
                        f"{where}: routing_keys entry {service!r} must map a service id to a key string"
                    )
                keys[service] = key
        if routing_key is not None:
            if not isinstance(routing_key, str) or not routing_key:
                raise ConfigurationError(f"{where}: 'routing_key' must be a non-empty string")
            keys.setdefault("default", routing_key)
        if not keys:
            raise ConfigurationError(f"{where} needs 'routing_keys' (or 'routing_key')")
        for key_name, value in (("default_severity", default_severity), ("default_source", default_source)):
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"{where}: '{key_name}' must be a string")
        if default_service_id is not None and not isinstance(default_service_id, str):
            raise ConfigurationError(f"{where}: 'default_service_id' must be a string")
        base = config_url(api_base_url, where, "api_base_url")
        super().__init__(name, timeout_seconds=timeout_seconds, client=client, clock=clock)
        self._keys = keys
        self._default_service = default_service_id
        self._base = base
        self._default_severity = default_severity
        self._default_source = default_source or "acteon"

    def _routing_key(self, service_id: str | None) -> str:
        # Configuration errors carry only the id, so the outcome reads "invalid configuration: <id>".
        if service_id is not None:
            if service_id not in self._keys:
                raise ProviderConfigurationError(service_id)
            return self._keys[service_id]
        if self._default_service is not None:
            if self._default_service not in self._keys:
                raise ProviderConfigurationError(self._default_service)
            return self._keys[self._default_service]
        if len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise ProviderConfigurationError("no service_id in payload and no default service configured")

    def build_event(self, payload: Any) -> dict[str, Any]:
        """The Events API body for a payload (validation errors are serialization errors)."""
        data = payload_object(payload, "pagerduty")
        action = data.get("event_action")
        if action is None:
            raise ProviderSerializationError("pagerduty payload needs 'event_action'")
        if action not in EVENT_ACTIONS:
            raise ProviderSerializationError(
                f"invalid event_action '{action}': must be 'trigger', 'acknowledge', or 'resolve'"
            )
        routing_key = self._routing_key(optional_str(data, "service_id", "pagerduty"))
        dedup_key = optional_str(data, "dedup_key", "pagerduty")
        event: dict[str, Any] = {"routing_key": routing_key, "event_action": action}
        if action != "trigger":
            if dedup_key is None:
                raise ProviderSerializationError(f"pagerduty '{action}' needs a 'dedup_key'")
            event["dedup_key"] = dedup_key
            return event

        summary = optional_str(data, "summary", "pagerduty")
        if summary is None:
            raise ProviderSerializationError("pagerduty 'trigger' needs a 'summary'")
        if dedup_key is not None:
            event["dedup_key"] = dedup_key
        inner: dict[str, Any] = {
            "summary": summary,
            "source": optional_str(data, "source", "pagerduty") or self._default_source,
            "severity": optional_str(data, "severity", "pagerduty") or self._default_severity,
        }
        for key in _PAYLOAD_EXTRAS:
            value = optional_str(data, key, "pagerduty")
            if value is not None:
                inner[key] = value
        if data.get("custom_details") is not None:
            inner["custom_details"] = data["custom_details"]
        event["payload"] = inner
        for key, required in (("images", "src"), ("links", "href")):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or not all(
                isinstance(item, Mapping) and isinstance(item.get(required), str) for item in value
            ):
                raise ProviderSerializationError(
                    f"pagerduty payload field '{key}' must be an array of objects with a '{required}' string"
                )
            event[key] = value
        return event

    async def execute(self, action: Action) -> ProviderResponse:
        event = self.build_event(action.payload)
        response, raw = await self.request("POST", f"{self._base}/v2/enqueue", json_body=event)
        self.raise_for_status(response, raw)
        body = self.decode_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            body = {}
        return ProviderResponse(
            "success",
            {
                "status": body.get("status"),
                "message": body.get("message"),
                "dedup_key": body.get("dedup_key"),
            },
            {},
        )

    async def health_check(self) -> None:
        """POST an empty event: any HTTP answer means the endpoint is reachable."""
        await self.request("POST", f"{self._base}/v2/enqueue", json_body={})
