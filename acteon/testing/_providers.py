"""Providers for tests: record what ran, or fail on a script."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anyio

from acteon._action import Action
from acteon._exceptions import (
    ProviderConnectionError,
    ProviderError,
    ProviderExecutionFailed,
    ProviderRateLimited,
    ProviderTimeout,
)
from acteon._response import ProviderResponse
from acteon.providers._base import Provider, as_response


class RecordingProvider(Provider):
    """Succeeds and keeps every executed ``Action`` in ``.actions``, in order.

    ``response`` (a value or ``fn(action)``) sets the success body;
    default ``{"ok": true}``.
    """

    def __init__(self, name: str = "recorder", response: Any = None) -> None:
        self.name = name
        self.inline = True
        self.actions: list[Action] = []
        self._response = {"ok": True} if response is None else response

    async def execute(self, action: Action) -> ProviderResponse:
        self.actions.append(action)
        body = self._response(action) if callable(self._response) else self._response
        return as_response(body)

    @property
    def calls(self) -> int:
        return len(self.actions)

    @property
    def payloads(self) -> list[Any]:
        return [a.payload for a in self.actions]

    def clear(self) -> None:
        self.actions.clear()


_FAILURES: dict[str, Callable[[str], ProviderError]] = {
    "retryable": lambda m: ProviderConnectionError(m),
    "connection": lambda m: ProviderConnectionError(m),
    "non_retryable": lambda m: ProviderExecutionFailed(m),
    "permanent": lambda m: ProviderExecutionFailed(m),
    "rate_limited": lambda m: ProviderRateLimited(m),
}


class FailingProvider(Provider):
    """Fails on a script, then (optionally) succeeds.

    ``FailingProvider("email", failures=2)`` fails twice with a retryable
    connection error, then succeeds. ``kind`` is ``"retryable"`` (default),
    ``"non_retryable"``, ``"rate_limited"`` or ``"timeout"`` (sleeps
    ``hang_seconds`` so the executor's timeout fires). ``failures=None`` fails
    forever. ``script`` gives one entry per call instead: an exception
    instance to raise, ``"ok"`` to succeed, or one of the kind names.
    """

    def __init__(
        self,
        name: str = "failing",
        *,
        failures: int | None = None,
        kind: str = "retryable",
        message: str = "provider down",
        hang_seconds: float = 3600.0,
        script: Iterable[Any] | None = None,
    ) -> None:
        self.name = name
        self.failures = failures
        self.kind = kind
        self.message = message
        self.hang_seconds = hang_seconds
        self.script = list(script) if script is not None else None
        self.calls = 0
        self.actions: list[Action] = []

    async def execute(self, action: Action) -> ProviderResponse:
        index = self.calls
        self.calls += 1
        self.actions.append(action)
        if self.script is not None:
            step = self.script[index] if index < len(self.script) else "ok"
        else:
            step = self.kind if self.failures is None or index < self.failures else "ok"
        if step == "ok":
            return ProviderResponse.success({"ok": True, "attempt": index + 1})
        if isinstance(step, BaseException):
            raise step
        if step == "timeout":
            await anyio.sleep(self.hang_seconds)
            raise ProviderTimeout(self.hang_seconds)
        factory = _FAILURES.get(step)
        if factory is None:
            raise ValueError(f"unknown failure kind {step!r}")
        raise factory(self.message)
