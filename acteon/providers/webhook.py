"""``webhook`` provider: deliver an action as an HTTP request.

Defaults match upstream's built-in webhook: ``POST`` the action's wire JSON to
a fixed ``url`` with the configured extra headers. On top of that (DECISIONS
D22, D23): templated URL/method/headers/body, an opt-in payload-chosen target,
an SSRF guard, Standard Webhooks signing, status-based retry classification
and outbound W3C trace context. See docs/providers-webhook.md.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol
from urllib.parse import quote

import anyio
import httpx

from acteon._action import Action
from acteon._exceptions import (
    ConfigurationError,
    ProviderConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderExecutionFailed,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderSerializationError,
    ProviderTimeout,
)
from acteon._response import ProviderResponse
from acteon.providers._base import Provider
from acteon.providers._signing import (
    WebhookVerificationError,
    decode_secret,
    message_id,
    signature_headers,
    verify_webhook_signature,
)
from acteon.providers._ssrf import (
    GuardedTransport,
    Resolver,
    TargetNotAllowed,
    check_url,
    describe_origin,
    vet_host,
)
from acteon.providers._templates import (
    MissingValue,
    StringTemplate,
    TemplateError,
    compile_body,
    render_body,
    template_context,
)

__all__ = [
    "TargetNotAllowed",
    "WebhookHTTPError",
    "WebhookProvider",
    "WebhookRateLimited",
    "WebhookVerificationError",
    "verify_webhook_signature",
]

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
ERROR_SNIPPET_BYTES = 256
TRUNCATION_MARK = "...[truncated]"
USER_AGENT = "acteon-webhook"
TRACE_HEADERS = ("traceparent", "tracestate")
# Headers a payload may not set: they belong to the transport, not to the message.
_PAYLOAD_FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    }
)

PayloadMode = Literal["full_action", "payload_only"]
StatusSpec = int | str | Sequence[int] | range


class _TimeSource(Protocol):
    def time(self) -> float: ...


class _SystemTime:
    def time(self) -> float:
        return time.time()


class WebhookHTTPError(ProviderHTTPError):
    """The endpoint answered with a status outside ``expected_status``.

    ``retryable`` follows D22 (408, 425, 429 and 5xx). ``body`` is the parsed
    JSON error body, or its first 256 bytes as text; ``retry_after`` is the
    ``Retry-After`` delay in seconds when the response had one.
    """

    def __init__(
        self,
        status_code: int,
        body: object = None,
        snippet: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status_code, body)
        self.retry_after = retry_after
        if snippet:
            self.detail = f"{status_code}: {snippet}"
            self.args = (f"{self.prefix}{self.detail}",)


class WebhookRateLimited(ProviderRateLimited):
    """The endpoint answered 429; ``retry_after`` holds the parsed ``Retry-After`` (seconds)."""

    def __init__(
        self,
        status_code: int = 429,
        body: object = None,
        snippet: str = "",
        retry_after: float | None = None,
    ) -> None:
        message = f"http status {status_code}" + (f": {snippet}" if snippet else "")
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code
        self.body = body


# --------------------------------------------------------------------------- config helpers


def _parse_status_spec(spec: StatusSpec | Iterable[StatusSpec] | None) -> tuple[tuple[int, int], ...]:
    """``expected_status`` as inclusive ranges. ``None`` means 200-299."""
    if spec is None:
        return ((200, 299),)
    items: list[Any]
    if isinstance(spec, int | str | range):
        items = [spec]
    else:
        items = list(spec)
    ranges: list[tuple[int, int]] = []
    for item in items:
        low: int
        high: int
        if isinstance(item, bool):
            raise ConfigurationError(f"expected_status: invalid entry {item!r}")
        if isinstance(item, int):
            low = high = item
        elif isinstance(item, range):
            if item.step != 1 or len(item) == 0:
                raise ConfigurationError(f"expected_status: invalid range {item!r}")
            low, high = item.start, item.stop - 1
        elif isinstance(item, str):
            text = item.strip().lower()
            try:
                if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
                    low = int(text[0]) * 100
                    high = low + 99
                elif "-" in text:
                    first, _, second = text.partition("-")
                    low, high = int(first), int(second)
                else:
                    low = high = int(text)
            except ValueError as exc:
                raise ConfigurationError(f"expected_status: cannot read {item!r}") from exc
        elif (
            isinstance(item, Sequence)
            and len(item) == 2
            and all(isinstance(bound, int) and not isinstance(bound, bool) for bound in item)
        ):
            low, high = int(item[0]), int(item[1])
        else:
            raise ConfigurationError(f"expected_status: cannot read {item!r}")
        if not (100 <= low <= high <= 599):
            raise ConfigurationError(f"expected_status: {item!r} is not a status range within 100-599")
        ranges.append((low, high))
    if not ranges:
        raise ConfigurationError("expected_status: give at least one status")
    return tuple(ranges)


def _header_value_ok(value: str) -> bool:
    """Header text must be ASCII without line breaks or NUL (no header injection)."""
    return value.isascii() and not any(char in value for char in "\r\n\0")


def _snippet(raw: bytes) -> str:
    if len(raw) <= ERROR_SNIPPET_BYTES:
        return raw.decode("utf-8", "replace")
    return raw[:ERROR_SNIPPET_BYTES].decode("utf-8", "replace") + TRUNCATION_MARK


def _parse_json(raw: bytes) -> Any:
    """The JSON value in ``raw``; raises ``ValueError`` when it is not JSON."""
    if not raw.strip():
        raise ValueError("empty body")
    return json.loads(raw)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; ``None`` if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _encode_json(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ProviderSerializationError(f"webhook body is not JSON-serializable: {exc}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _url_escape(text: str) -> str:
    return quote(text, safe="")


def _authority_is_literal(template: StringTemplate) -> bool:
    """True when every placeholder of a URL template comes after the scheme and host."""
    if template.is_static:
        return True
    prefix = template.static_prefix()
    scheme, sep, rest = prefix.partition("://")
    if not sep or not scheme:
        return False
    return any(mark in rest for mark in "/?#")


# --------------------------------------------------------------------------- provider


class WebhookProvider(Provider):
    """Send each action to an HTTP endpoint.

    Args:
        name: registry name of the provider.
        url: target URL; may hold ``{{ ... }}`` placeholders in its path and
            query (in the host too, only with ``allow_payload_target``).
            Optional only when ``allow_payload_target`` is true.
        method: ``GET``, ``POST`` (default), ``PUT``, ``PATCH`` or ``DELETE``; may be a template.
        headers: extra request headers; values may be templates.
        body_template: request body. A dict or list is sent as JSON, with a
            placeholder that is a whole string keeping its JSON type; a string
            is rendered and sent as is. Default: see ``payload_mode``.
        payload_mode: without a body template, ``"full_action"`` (default)
            sends the action's wire JSON and ``"payload_only"`` its payload.
        timeout_seconds: deadline for one delivery, DNS to last body byte.
        expected_status: statuses that count as success (ints, ``"2xx"``,
            ``"200-204"``, ``[low, high]`` pairs or ranges); default 200-299.
        allow_payload_target: let ``payload["url"|"method"|"headers"|"body"]``
            override the configuration.
        allow_private_targets: turn the SSRF guard off (loopback, private,
            link-local, ... targets allowed).
        signing_secret: ``whsec_...`` secret (or a list, for key rotation) to
            add Standard Webhooks ``webhook-id``/``-timestamp``/``-signature`` headers.
        signing_key_id: optional label sent as ``webhook-key-id`` with signed requests.
        max_response_bytes: response bytes read at most; a longer success body
            is reported as ``{"status_code": N}``.
        max_connections: size of the connection pool.
        verify_tls: verify HTTPS certificates (default true).
        include_response_headers: copy response headers (lower-case names) into
            the ``ProviderResponse``.
        client: an ``httpx.AsyncClient`` to use instead of the provider's own.
            It is not closed by :meth:`aclose`, and since it connects on its
            own, the SSRF guard can only vet the host before the request.
        clock: object with ``time()`` for signature timestamps (default: system time).
        resolver: ``async resolver(host, port) -> [address, ...]`` used by the
            SSRF guard instead of the system resolver.
    """

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        body_template: Any = None,
        payload_mode: PayloadMode = "full_action",
        timeout_seconds: float = 30.0,
        expected_status: StatusSpec | Iterable[StatusSpec] | None = None,
        allow_payload_target: bool = False,
        allow_private_targets: bool = False,
        signing_secret: str | Sequence[str] | None = None,
        signing_key_id: str | None = None,
        max_response_bytes: int = 1_048_576,
        max_connections: int = 100,
        verify_tls: bool = True,
        include_response_headers: bool = False,
        client: httpx.AsyncClient | None = None,
        clock: _TimeSource | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.name = name
        where = f"webhook provider '{name}'"
        self._allow_payload_target = bool(allow_payload_target)
        self._allow_private = bool(allow_private_targets)

        try:
            self._url = None if url is None else StringTemplate.compile(url, where=f"{where}: url")
            self._method = StringTemplate.compile(method, where=f"{where}: method")
            self._headers: tuple[tuple[str, StringTemplate], ...] = tuple(
                (str(key), StringTemplate.compile(str(value), where=f"{where}: header '{key}'"))
                for key, value in (headers or {}).items()
            )
            self._body = (
                None
                if body_template is None
                else compile_body(body_template, where=f"{where}: body_template")
            )
        except TemplateError as exc:
            raise ConfigurationError(str(exc)) from exc
        except AttributeError as exc:
            raise ConfigurationError(f"{where}: headers must be a table of name = value") from exc

        if self._url is None:
            if not self._allow_payload_target:
                raise ConfigurationError(f"{where} needs a 'url' (or allow_payload_target = true)")
        elif self._url.is_static:
            try:
                check_url(self._url.source, allow_private=self._allow_private)
            except TargetNotAllowed as exc:
                raise ConfigurationError(f"{where}: {exc.detail}") from exc
        elif not self._allow_payload_target and not _authority_is_literal(self._url):
            raise ConfigurationError(
                f"{where}: url placeholders may only appear after the host "
                "(the target host is fixed unless allow_payload_target = true)"
            )
        if self._method.is_static and self._method.source.strip().upper() not in ALLOWED_METHODS:
            raise ConfigurationError(
                f"{where}: method '{method}' is not one of {', '.join(sorted(ALLOWED_METHODS))}"
            )
        for key, template in self._headers:
            if not key or not _header_value_ok(key) or not _header_value_ok(template.source):
                raise ConfigurationError(f"{where}: header '{key}' has an invalid name or value")
        if payload_mode not in ("full_action", "payload_only"):
            raise ConfigurationError(f"{where}: payload_mode must be 'full_action' or 'payload_only'")
        self._payload_mode = payload_mode

        try:
            self._timeout = float(timeout_seconds)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: timeout_seconds must be a number") from exc
        if not (self._timeout > 0 and math.isfinite(self._timeout)):
            raise ConfigurationError(f"{where}: timeout_seconds must be positive")
        self._expected = _parse_status_spec(expected_status)
        if max_response_bytes < 0 or max_connections < 1:
            raise ConfigurationError(f"{where}: max_response_bytes/max_connections out of range")
        self._max_response_bytes = int(max_response_bytes)

        self._signing_keys: list[bytes] = []
        if signing_secret is not None:
            secrets = [signing_secret] if isinstance(signing_secret, str) else list(signing_secret)
            try:
                self._signing_keys = [decode_secret(secret) for secret in secrets]
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{where}: signing_secret: {exc}") from exc
            if not self._signing_keys:
                raise ConfigurationError(f"{where}: signing_secret is an empty list")
        if signing_key_id is not None and not _header_value_ok(str(signing_key_id)):
            raise ConfigurationError(f"{where}: signing_key_id has an invalid value")
        self._signing_key_id = None if signing_key_id is None else str(signing_key_id)
        self._include_response_headers = bool(include_response_headers)
        self._clock: _TimeSource = clock if clock is not None else _SystemTime()
        self._resolver = resolver

        self._owns_client = client is None
        # Our own client connects through the guard itself; an injected one is vetted before sending.
        self._guarded_client = client is None and not self._allow_private
        if client is None:
            limits = httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(20, max_connections),
            )
            transport: httpx.AsyncBaseTransport
            if self._allow_private:
                transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify_tls, trust_env=False)
            else:
                transport = GuardedTransport(limits=limits, verify=verify_tls, resolver=resolver)
            client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(self._timeout),
                headers={"user-agent": USER_AGENT},
            )
        self._client = client
        self._closed = False

    # ------------------------------------------------------------------ Provider API

    async def execute(self, action: Action) -> ProviderResponse:
        """Deliver ``action``; see the class docstring and D22 for how failures are raised."""
        try:
            with anyio.fail_after(self._timeout):
                return await self._deliver(action)
        except TimeoutError as exc:
            raise ProviderTimeout(self._timeout) from exc

    async def health_check(self) -> None:
        """``HEAD`` the configured URL: any HTTP answer is healthy, a transport failure is not.

        A provider without a fixed URL (payload-chosen or templated) has nothing to probe.
        """
        if self._url is None or not self._url.is_static:
            return
        target = check_url(self._url.source, allow_private=self._allow_private)
        origin = describe_origin(target)
        try:
            with anyio.fail_after(self._timeout):
                await self._vet_if_needed(target, origin)
                await self._client.head(target, timeout=self._timeout, follow_redirects=False)
        except ProviderError:
            raise
        except TimeoutError as exc:
            raise ProviderConnectionError(f"health check of {origin} timed out") from exc
        except OSError as exc:
            raise ProviderConnectionError(f"health check of {origin}: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise ProviderConnectionError(f"health check of {origin}: {_describe(exc)}") from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ request building

    async def _deliver(self, action: Action) -> ProviderResponse:
        wire = action.to_wire()
        context = template_context(action, wire)
        overrides = self._payload_overrides(action)
        try:
            url_text = self._render_url(context, overrides)
            method = self._render_method(context, overrides)
            headers = self._build_headers(action, context, overrides)
            body = self._build_body(wire, context, overrides)
        except MissingValue as exc:
            raise ProviderExecutionFailed(f"webhook provider '{self.name}': {exc}") from exc

        target = check_url(url_text, allow_private=self._allow_private)
        origin = describe_origin(target)
        await self._vet_if_needed(target, origin)

        if self._signing_keys:
            timestamp = int(self._clock.time())
            headers.update(signature_headers(self._signing_keys, message_id(action.id), timestamp, body))
            if self._signing_key_id is not None:
                headers["webhook-key-id"] = self._signing_key_id
        return await self._send(method, target, origin, headers, body)

    def _payload_overrides(self, action: Action) -> Mapping[str, Any]:
        if not self._allow_payload_target or not isinstance(action.payload, Mapping):
            return {}
        return action.payload

    def _render_url(self, context: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
        if overrides.get("url") is not None:
            url = overrides["url"]
            if not isinstance(url, str):
                raise ProviderExecutionFailed("payload 'url' must be a string")
            return url
        if self._url is None:
            raise ProviderConfigurationError(
                f"webhook provider '{self.name}' has no url and the payload names none"
            )
        return self._url.render(context, escape=_url_escape)

    def _render_method(self, context: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
        if overrides.get("method") is not None:
            raw = overrides["method"]
            if not isinstance(raw, str):
                raise ProviderExecutionFailed("payload 'method' must be a string")
        else:
            raw = self._method.render(context)
        method = raw.strip().upper()
        if method not in ALLOWED_METHODS:
            raise ProviderExecutionFailed(
                f"method '{raw}' is not one of {', '.join(sorted(ALLOWED_METHODS))}"
            )
        return method

    def _build_headers(
        self, action: Action, context: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> httpx.Headers:
        headers = httpx.Headers({"content-type": "application/json"})
        for name in TRACE_HEADERS:
            value = action.trace_context.get(name)
            if isinstance(value, str) and value and _header_value_ok(value):
                headers[name] = value
        for name, template in self._headers:
            value = template.render(context)
            if not _header_value_ok(value):
                raise ProviderExecutionFailed(f"header '{name}' rendered to an invalid value")
            headers[name] = value
        extra = overrides.get("headers")
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise ProviderExecutionFailed("payload 'headers' must be an object of strings")
            for name, value in extra.items():
                if not isinstance(name, str) or not isinstance(value, str):
                    raise ProviderExecutionFailed("payload 'headers' must be an object of strings")
                if name.lower() in _PAYLOAD_FORBIDDEN_HEADERS or not name:
                    raise ProviderExecutionFailed(f"payload header '{name}' is not allowed")
                if not _header_value_ok(name) or not _header_value_ok(value):
                    raise ProviderExecutionFailed(f"payload header '{name}' has an invalid value")
                headers[name] = value
        return headers

    def _build_body(
        self, wire: dict[str, Any], context: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> bytes:
        if overrides.get("body") is not None:
            body = overrides["body"]
            return body.encode("utf-8") if isinstance(body, str) else _encode_json(body)
        if self._body is not None:
            if isinstance(self._body, StringTemplate):
                return self._body.render(context).encode("utf-8")
            return _encode_json(render_body(self._body, context))
        if self._payload_mode == "payload_only":
            return _encode_json(wire["payload"])
        return _encode_json(wire)

    async def _vet_if_needed(self, target: httpx.URL, origin: str) -> None:
        """Resolve and vet the host when the client is not our guarded one (guard on, injected client)."""
        if self._allow_private or self._guarded_client:
            return
        try:
            port = target.port or (443 if target.scheme == "https" else 80)
            await vet_host(target.host, port, resolver=self._resolver, origin=origin)
        except OSError as exc:
            raise ProviderConnectionError(f"could not resolve {origin}: {exc}") from exc

    # ------------------------------------------------------------------ sending

    async def _send(
        self, method: str, target: httpx.URL, origin: str, headers: httpx.Headers, body: bytes
    ) -> ProviderResponse:
        try:
            async with self._client.stream(
                method,
                target,
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                raw, truncated = await self._read_limited(response)
        except ProviderError:
            raise
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self._timeout) from exc
        except httpx.ConnectError as exc:
            raise ProviderConnectionError(f"{origin}: {_describe(exc)}") from exc
        except httpx.InvalidURL as exc:
            raise ProviderConfigurationError(f"invalid webhook url: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ProviderExecutionFailed(f"{origin}: {_describe(exc)}") from exc
        return self._classify(response, raw, truncated)

    async def _read_limited(self, response: httpx.Response) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            if size + len(chunk) > self._max_response_bytes:
                chunks.append(chunk[: self._max_response_bytes - size])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), False

    def _is_expected(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self._expected)

    def _classify(self, response: httpx.Response, raw: bytes, truncated: bool) -> ProviderResponse:
        status = response.status_code
        if self._is_expected(status):
            body: Any
            try:
                if truncated:
                    raise ValueError("truncated")
                body = _parse_json(raw)
            except ValueError:
                body = {"status_code": status}
            headers = (
                {name.lower(): value for name, value in response.headers.items()}
                if self._include_response_headers
                else {}
            )
            return ProviderResponse("success", body, headers)

        snippet = _snippet(raw)
        try:
            if truncated:
                raise ValueError("truncated")
            error_body: Any = _parse_json(raw)
        except ValueError:
            error_body = snippet
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock.time())
        if status == 429:
            raise WebhookRateLimited(status, error_body, snippet, retry_after)
        raise WebhookHTTPError(status, error_body, snippet, retry_after)
