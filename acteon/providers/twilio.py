"""``twilio`` provider: send an SMS/MMS through Twilio's Messages API.

Payload: ``to``, ``body``, optional ``from`` (else ``from_number``) and
``media_url``. Sent form-encoded with HTTP Basic auth (account SID, auth
token). See docs/providers.md.
"""

from __future__ import annotations

from typing import Any

import httpx

from acteon._action import Action
from acteon._exceptions import (
    ConfigurationError,
    ProviderExecutionFailed,
    ProviderSerializationError,
)
from acteon._response import ProviderResponse
from acteon.providers._http import (
    HttpApiProvider,
    TimeSource,
    config_url,
    optional_str,
    payload_object,
)

DEFAULT_API_BASE_URL = "https://api.twilio.com"


class TwilioProvider(HttpApiProvider):
    """Send actions as text messages with Twilio.

    Args:
        name: registry name of the provider.
        account_sid: the account SID (Basic-auth user and part of the URL).
        auth_token: the auth token (Basic-auth password).
        from_number: sender number used when the payload has no ``from``.
        api_base_url: API root (default ``https://api.twilio.com``).
        timeout_seconds, client, clock: see :class:`~acteon.providers._http.HttpApiProvider`.
    """

    kind = "twilio"

    def __init__(
        self,
        name: str = "twilio",
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        where = f"twilio provider '{name}'"
        for key, value in (("account_sid", account_sid), ("auth_token", auth_token)):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{where}: '{key}' must be a non-empty string")
        if not account_sid.isalnum():
            # The SID becomes a path segment; anything else would change the URL's meaning.
            raise ConfigurationError(f"{where}: 'account_sid' must be letters and digits only")
        if from_number is not None and (not isinstance(from_number, str) or not from_number):
            raise ConfigurationError(f"{where}: 'from_number' must be a non-empty string")
        base = config_url(api_base_url, where, "api_base_url")
        super().__init__(name, timeout_seconds=timeout_seconds, client=client, clock=clock)
        self._account = f"{base}/2010-04-01/Accounts/{account_sid}"
        self._auth = (account_sid, auth_token)
        self._from = from_number

    def build_form(self, payload: Any) -> dict[str, str]:
        """The form fields for a payload (validation errors are serialization errors)."""
        data = payload_object(payload, "twilio")
        to = optional_str(data, "to", "twilio")
        body = optional_str(data, "body", "twilio")
        if to is None:
            raise ProviderSerializationError("twilio payload needs 'to'")
        if body is None:
            raise ProviderSerializationError("twilio payload needs 'body'")
        sender = optional_str(data, "from", "twilio") or self._from
        if sender is None:
            raise ProviderSerializationError(
                "no 'from' in payload and no from_number configured"
            )
        form = {"To": to, "From": sender, "Body": body}
        media = optional_str(data, "media_url", "twilio")
        if media is not None:
            form["MediaUrl"] = media
        return form

    async def execute(self, action: Action) -> ProviderResponse:
        form = self.build_form(action.payload)
        response, raw = await self.request(
            "POST", f"{self._account}/Messages.json", form=form, auth=self._auth
        )
        self.raise_for_status(response, raw)
        body = self.decode_json(raw)
        if not isinstance(body, dict):
            raise ProviderExecutionFailed("twilio response is not a JSON object")
        if body.get("error_code") is not None:
            detail = body.get("error_message") or "no message"
            raise ProviderExecutionFailed(f"twilio error {body['error_code']}: {detail}")
        return ProviderResponse("success", {"sid": body.get("sid"), "status": body.get("status")}, {})

    async def health_check(self) -> None:
        """``GET`` the account resource with the credentials: non-2xx fails."""
        response, raw = await self.request("GET", f"{self._account}.json", auth=self._auth)
        self.raise_for_status(response, raw)
