"""The provider contract: something that executes an action.

A provider returns a :class:`ProviderResponse` or raises a
:class:`~acteon.ProviderError` subclass whose ``retryable`` flag drives retries,
the dead-letter queue and the circuit breaker (core-pipeline.md §2.3, D22).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from acteon._action import Action
from acteon._response import ProviderResponse


class Provider(ABC):
    """Base class of every provider. ``name`` is how actions address it."""

    name: str = ""
    inline: bool = False
    """True when ``execute`` never suspends (no I/O waits): the executor then skips
    the per-attempt timeout scope, which could not interrupt it anyway."""

    @abstractmethod
    async def execute(self, action: Action) -> ProviderResponse:
        """Execute ``action``; raise a ``ProviderError`` subclass on failure."""

    async def health_check(self) -> None:
        """Raise a ``ProviderError`` if the provider is unhealthy. Default: healthy."""

    async def aclose(self) -> None:
        """Release resources (HTTP clients, connections). Idempotent."""


def as_response(value: Any) -> ProviderResponse:
    """A provider's return value as a response: a plain value is a success body."""
    if isinstance(value, ProviderResponse):
        return value
    return ProviderResponse("success", value, {})


class FunctionProvider(Provider):
    """Wrap a sync or async callable ``fn(action)`` as a provider.

    The callable returns a :class:`ProviderResponse` or any JSON-able value
    (taken as a success body). Sync callables run in a worker thread unless
    ``inline=True`` (for cheap, non-blocking functions).
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[Action], Any] | Callable[[Action], Awaitable[Any]],
        *,
        inline: bool = False,
    ) -> None:
        self.name = name
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._inline = inline
        self.inline = inline and not self._is_async

    async def execute(self, action: Action) -> ProviderResponse:
        if self._is_async:
            result = await self._fn(action)
        elif self._inline:
            result = self._fn(action)
        else:
            result = await anyio.to_thread.run_sync(self._fn, action)
        return as_response(result)


def provider(
    name: str, *, inline: bool = False
) -> Callable[[Callable[[Action], Any]], FunctionProvider]:
    """Decorator form of :class:`FunctionProvider`::

        @provider("email")
        async def send(action): ...
    """

    def wrap(fn: Callable[[Action], Any]) -> FunctionProvider:
        return FunctionProvider(name, fn, inline=inline)

    return wrap
