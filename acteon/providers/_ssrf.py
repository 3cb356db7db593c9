"""Outbound target policy for HTTP providers: the SSRF guard of DECISIONS D23.

Three layers, from cheapest to strongest:

1. :func:`check_url` -- syntax and static policy: only ``http``/``https``, no
   credentials in the URL, and (when the guard is on) no ``localhost`` names
   and no literal address that :func:`forbidden_reason` rejects.
2. :func:`vet_host` -- resolve a host name with :func:`anyio.getaddrinfo` and
   reject it when *any* resolved address is forbidden.
3. :class:`GuardedTransport` -- an ``httpx`` transport whose network backend
   runs :func:`vet_host` at connect time and then connects to one of the
   addresses it just vetted, never to a second lookup of the name. A DNS
   answer that changes between a check and the connection (DNS rebinding)
   therefore cannot route the request to an address nobody checked. TLS
   still verifies the certificate against the original host name.

Pooled keep-alive connections are reused only for the same origin, and each
was vetted when it was opened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import anyio
import httpcore
import httpx

from acteon._exceptions import ProviderConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolver(host, port)`` returns the addresses (as text) a host name resolves to."""
AddressPolicy = Callable[[IPAddress], "str | None"]
"""``policy(address)`` returns why the address is refused, or ``None`` to allow it."""

ALLOWED_SCHEMES = ("http", "https")

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class TargetNotAllowed(ProviderConfigurationError):
    """The target URL is refused by the outbound policy (never retried)."""


def describe_origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url`` -- safe for messages (paths and queries may hold secrets)."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    plain = ipaddress.IPv6Address(int(address))  # drop any scope id before network tests
    if plain in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    if plain in _IPV4_COMPATIBLE and int(plain) > 1:  # '::' and '::1' are handled as IPv6
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be a webhook target, or ``None`` if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"an IPv6 address embedding {embedded}, which is {inner}"
            plain = ipaddress.IPv6Address(int(address))
            if address.ipv4_mapped is not None or plain in _NAT64_WELL_KNOWN:
                return None  # a translation of a public IPv4 address reaches that address
        if ipaddress.IPv6Address(int(address)) in _NAT64_LOCAL_USE:
            return "a local-use NAT64 address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 zone ids allowed), or ``None`` if it is a name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _refuse(origin: str, what: str, reason: str) -> TargetNotAllowed:
    return TargetNotAllowed(
        f"refusing webhook target {origin}: {what} is {reason} "
        "(set allow_private_targets = true to allow private targets)"
    )


def check_url(url: str | httpx.URL, *, allow_private: bool) -> httpx.URL:
    """Parse ``url`` and apply the static policy; raise :class:`TargetNotAllowed` when refused.

    Scheme and credential rules apply even when ``allow_private`` is true:
    only ``http``/``https`` can be sent, and credentials belong in headers,
    not in a URL that ends up in logs.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise TargetNotAllowed(f"invalid webhook url: {exc}") from exc
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise TargetNotAllowed(
            f"refusing webhook url with scheme '{scheme or '(none)'}': only http and https are allowed"
        )
    if not parsed.host:
        raise TargetNotAllowed("invalid webhook url: no host")
    if parsed.userinfo:
        raise TargetNotAllowed(
            f"refusing webhook target {describe_origin(parsed)}: credentials in the url are not "
            "allowed (send them in a header such as Authorization)"
        )
    if not allow_private:
        host = parsed.host.lower().rstrip(".")
        if host in _LOCAL_NAMES or host.endswith(".localhost"):
            raise _refuse(describe_origin(parsed), f"host '{host}'", "a local host name")
        literal = parse_address(host)
        if literal is not None:
            reason = forbidden_reason(literal)
            if reason is not None:
                raise _refuse(describe_origin(parsed), str(literal), reason)
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with :func:`anyio.getaddrinfo` (TCP); addresses in resolver order."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


async def vet_host(
    host: str,
    port: int,
    *,
    resolver: Resolver | None = None,
    policy: AddressPolicy = forbidden_reason,
    origin: str | None = None,
) -> list[str]:
    """Resolve ``host`` and return its addresses if *every* one passes ``policy``.

    Raises :class:`TargetNotAllowed` naming the first refused address; DNS
    failures propagate as ``OSError`` (``socket.gaierror``).
    """
    where = origin or host
    literal = parse_address(host)
    if literal is not None:
        reason = policy(literal)
        if reason is not None:
            raise _refuse(where, str(literal), reason)
        return [str(literal)]
    addresses = list(await (resolver or system_resolver)(host, port))
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"no addresses for {host}")
    for text in addresses:
        address = parse_address(text)
        if address is None:
            raise _refuse(where, f"resolved address '{text}'", "not an IP address")
        reason = policy(address)
        if reason is not None:
            raise _refuse(where, f"'{host}' resolves to {address}, which", reason)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects to a vetted address; wraps another backend for the socket work."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend | None = None,
        *,
        resolver: Resolver | None = None,
        policy: AddressPolicy = forbidden_reason,
    ) -> None:
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        self._resolver = resolver
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                origin = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                addresses = await vet_host(
                    host, port, resolver=self._resolver, policy=self._policy, origin=origin
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetNotAllowed("refusing a unix-socket target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore raises its own exception classes; httpx callers expect httpx's. Most specific first.
_ERROR_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERROR_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            with _httpx_errors():
                await closer()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport (HTTP/1.1, pooled, no proxy) that only connects to vetted addresses."""

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        verify: bool | ssl.SSLContext = True,
        resolver: Resolver | None = None,
        policy: AddressPolicy = forbidden_reason,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(resolver=resolver, policy=policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
