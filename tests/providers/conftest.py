"""Fixtures for provider tests: loopback HTTP servers, actions and a provider factory."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from acteon._action import Action
from acteon.providers.webhook import WebhookProvider


class FixedClock:
    """A clock whose ``time()`` the test sets by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def make_action(payload: Any = None, **fields: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": "notifications",
        "tenant": "tenant-1",
        "provider": "hook",
        "action_type": "notify",
        "payload": {"message": "hello"} if payload is None else payload,
    }
    data.update(fields)
    return Action(**data)


ProviderFactory = Callable[..., WebhookProvider]


@pytest.fixture
async def make_provider() -> AsyncIterator[ProviderFactory]:
    """Build webhook providers (loopback allowed unless the test says otherwise); close them after."""
    created: list[WebhookProvider] = []

    def factory(url: str | None = None, **options: Any) -> WebhookProvider:
        options.setdefault("allow_private_targets", True)
        provider = WebhookProvider(options.pop("name", "hook"), url, **options)
        created.append(provider)
        return provider

    yield factory
    for provider in created:
        await provider.aclose()


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[HTTPServer]:
    """A second loopback server that handles requests in threads (for slow handlers)."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def slow_server(threaded_server: HTTPServer) -> Iterator[HTTPServer]:
    yield threaded_server
    threaded_server.clear()


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def hangup_port() -> Iterator[int]:
    """A loopback server that accepts a connection, reads the request and closes without answering."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(1.0)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    listener.close()
