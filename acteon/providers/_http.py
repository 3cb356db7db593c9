"""Shared plumbing for the HTTP API integrations (Slack, PagerDuty, Teams, Discord, Twilio).

Each integration talks to one operator-configured service, so unlike the
generic webhook there is no payload-chosen target and no SSRF guard: the URL
is checked once (scheme, host, no credentials) when the provider is built.
What they share is how a request is sent and how a failure is classified:

* transport failures -> :class:`ProviderConnectionError` (retryable), client
  deadlines -> :class:`ProviderTimeout`;
* 429 -> :class:`ApiRateLimited` carrying ``Retry-After``;
* 408, 425 and 5xx -> :class:`ApiUnavailable`, a retryable connection error (D22);
* any other non-2xx -> :class:`ApiStatusError`, a non-retryable execution failure;

and the texts read ``HTTP <status>: <body>`` with the body cut to 256 bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
import httpx

from acteon._exceptions import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderExecutionFailed,
    ProviderRateLimited,
    ProviderSerializationError,
    ProviderTimeout,
)
from acteon.providers._base import Provider
from acteon.providers._ssrf import TargetNotAllowed, check_url, describe_origin
from acteon.providers.webhook import ERROR_SNIPPET_BYTES, TRUNCATION_MARK, parse_retry_after

MAX_RESPONSE_BYTES = 1_048_576


class TimeSource(Protocol):
    def time(self) -> float: ...


class _SystemTime:
    def time(self) -> float:
        return time.time()


class ApiStatusError(ProviderExecutionFailed):
    """The service refused the request with a 4xx that retrying will not fix."""

    def __init__(self, message: str, status_code: int, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ApiUnavailable(ProviderConnectionError):
    """The service answered 408, 425 or 5xx: retryable under D22."""

    def __init__(
        self, message: str, status_code: int, body: object = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


class ApiRateLimited(ProviderRateLimited):
    """The service answered 429; ``retry_after`` is its ``Retry-After`` in seconds, if any."""

    def __init__(self, message: str, status_code: int = 429, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


def snippet(raw: bytes) -> str:
    """The first 256 bytes of an error body, as text, marked when cut."""
    if len(raw) <= ERROR_SNIPPET_BYTES:
        return raw.decode("utf-8", "replace")
    return raw[:ERROR_SNIPPET_BYTES].decode("utf-8", "replace") + TRUNCATION_MARK


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_retryable_status(status: int) -> bool:
    return status in (408, 425) or status >= 500


def payload_object(payload: Any, kind: str) -> Mapping[str, Any]:
    """The action payload as a JSON object, or a serialization error naming the provider type."""
    if not isinstance(payload, Mapping):
        raise ProviderSerializationError(
            f"{kind} payload must be a JSON object, got {type(payload).__name__}"
        )
    return payload


def optional_str(payload: Mapping[str, Any], key: str, kind: str) -> str | None:
    """``payload[key]`` when it is a string, ``None`` when absent or null; anything else is an error."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProviderSerializationError(
            f"{kind} payload field '{key}' must be a string, got {type(value).__name__}"
        )
    return value


def config_url(value: Any, where: str, key: str) -> str:
    """A configured base/webhook URL, checked for scheme and host; returned without a trailing slash."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where}: '{key}' must be a non-empty URL string")
    try:
        check_url(value.strip(), allow_private=True)
    except TargetNotAllowed as exc:
        raise ConfigurationError(f"{where}: '{key}': {exc.detail}") from exc
    return value.strip().rstrip("/")


class HttpApiProvider(Provider):
    """Base of the HTTP integrations: owns the client, sends requests, classifies statuses.

    Args:
        name: registry name of the provider.
        timeout_seconds: deadline for one request, connect to last body byte.
        client: an ``httpx.AsyncClient`` to use instead of the provider's own
            (not closed by :meth:`aclose`).
        clock: object with ``time()``, used to read HTTP-date ``Retry-After`` values.
    """

    kind = "http"

    def __init__(
        self,
        name: str,
        *,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        clock: TimeSource | None = None,
    ) -> None:
        self.name = name
        self._where = f"{self.kind} provider '{name}'"
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float) or not (
            timeout_seconds > 0
        ):
            raise ConfigurationError(f"{self._where}: timeout_seconds must be a positive number")
        self._timeout = float(timeout_seconds)
        self._clock: TimeSource = clock or _SystemTime()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"acteon-{self.kind}"},
        )
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """Send one request; returns the response and its (size-capped) body. Transport errors raised."""
        content: bytes | None = None
        send_headers = dict(headers or {})
        if json_body is not None:
            try:
                content = json.dumps(json_body, ensure_ascii=False, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise ProviderSerializationError(f"{self.kind} request is not JSON-serializable: {exc}") from exc
            send_headers["content-type"] = "application/json"
        target = httpx.URL(url)
        origin = describe_origin(target)
        try:
            with anyio.fail_after(self._timeout):
                async with self._client.stream(
                    method,
                    target,
                    content=content,
                    data=dict(form) if form is not None else None,
                    headers=send_headers,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    params=params,
                    timeout=self._timeout,
                ) as response:
                    raw = await _read_capped(response)
        except ProviderError:
            raise
        except TimeoutError as exc:
            raise ProviderTimeout(self._timeout) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self._timeout) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise ProviderConnectionError(f"{self.kind} request to {origin}: {describe(exc)}") from exc
        return response, raw

    def raise_for_status(self, response: httpx.Response, raw: bytes) -> None:
        """Raise the D22 error for a non-2xx answer; return quietly on 2xx."""
        status = response.status_code
        if 200 <= status < 300:
            return
        text = snippet(raw)
        message = f"HTTP {status}: {text}"
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock.time())
        if status == 429:
            raise ApiRateLimited(message, status, retry_after)
        body: Any
        try:
            body = json.loads(raw) if raw.strip() else text
        except ValueError:
            body = text
        if is_retryable_status(status):
            raise ApiUnavailable(message, status, body, retry_after)
        raise ApiStatusError(message, status, body)

    def decode_json(self, raw: bytes) -> Any:
        """A success body as JSON; an undecodable one is a connection-level fault (upstream maps it so)."""
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ProviderConnectionError(
                f"{self.kind} response is not valid JSON: {snippet(raw)!r}"
            ) from exc


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = MAX_RESPONSE_BYTES - size
        if len(chunk) >= room:
            chunks.append(chunk[:room])
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
