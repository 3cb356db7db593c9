"""The executor: runs a provider with a per-attempt timeout, retries and a DLQ.

``execute`` never raises for provider trouble: every failure becomes a
``Failed`` outcome (core-pipeline.md §6.3). Retryable failures are retried with
the configured backoff; once retries are exhausted they go to the dead-letter
queue. Backoff sleeps use the gateway clock, so a FakeClock makes them instant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from acteon._action import Action
from acteon._clock import SYSTEM_CLOCK, Clock
from acteon._dlq import DeadLetter, DeadLetterQueue
from acteon._eager import FastLimiter
from acteon._exceptions import ConfigurationError, ProviderError, ProviderTimeout
from acteon._retry import RetryStrategy
from acteon._timefmt import format_rust_duration
from acteon.outcomes import Executed, Failed, Outcome
from acteon.providers._base import Provider

_log = logging.getLogger("acteon.executor")


@dataclass(slots=True)
class ExecutorConfig:
    """``max_retries`` (attempts = 1 + max_retries), per-attempt ``timeout_seconds``,
    ``max_concurrent`` provider calls, and the backoff ``retry`` strategy."""

    max_retries: int = 3
    timeout_seconds: float = 30.0
    max_concurrent: int = 10
    retry: RetryStrategy = field(default_factory=RetryStrategy)
    dlq_enabled: bool = False

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> ExecutorConfig:
        data = dict(data or {})
        out = cls()
        try:
            if "max_retries" in data:
                out.max_retries = int(data.pop("max_retries"))
            if "timeout_seconds" in data:
                out.timeout_seconds = float(data.pop("timeout_seconds"))
            if "max_concurrent" in data:
                out.max_concurrent = int(data.pop("max_concurrent"))
            if "dlq_enabled" in data:
                out.dlq_enabled = bool(data.pop("dlq_enabled"))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"[executor]: {exc}") from exc
        out.retry = RetryStrategy.from_config(data.pop("retry", None))
        if data:
            raise ConfigurationError(f"unknown [executor] keys: {', '.join(sorted(data))}")
        out.validate()
        return out

    def validate(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError("executor.max_retries must be >= 0")
        if self.timeout_seconds <= 0:
            raise ConfigurationError("executor.timeout_seconds must be > 0")
        if self.max_concurrent < 1:
            raise ConfigurationError("executor.max_concurrent must be >= 1")


def failed_from_error(error: BaseException, attempts: int) -> Failed:
    if isinstance(error, ProviderError):
        return Failed(error.code, str(error), bool(error.retryable), attempts, error)
    # A provider that raised something other than ProviderError crashed: not retryable.
    return Failed("EXECUTION_FAILED", f"execution failed: {error!r}", False, attempts, error)


class Executor:
    """Runs providers under a shared concurrency limit."""

    def __init__(
        self,
        config: ExecutorConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        dlq: DeadLetterQueue | None = None,
    ) -> None:
        self.config = config or ExecutorConfig()
        self.config.validate()
        self.clock = clock
        self.dlq = dlq
        self._limit = FastLimiter(self.config.max_concurrent)

    async def execute(self, action: Action, provider: Provider) -> Outcome:
        cfg = self.config
        timeout = cfg.timeout_seconds
        last_attempt = cfg.max_retries
        async with self._limit:
            attempt = 0
            while True:
                error: BaseException
                try:
                    if provider.inline:
                        # It never waits, so a timeout could not interrupt it; an anyio
                        # cancel scope would cost ~10 µs for nothing.
                        return Executed(await provider.execute(action))
                    with anyio.fail_after(timeout):
                        response = await provider.execute(action)
                    return Executed(response)
                except TimeoutError:
                    error = ProviderTimeout(timeout)
                except ProviderError as exc:
                    error = exc
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:  # a crashing provider becomes a non-retryable failure
                    _log.warning("provider %s raised %r", provider.name, exc)
                    error = exc
                retryable = isinstance(error, ProviderError) and bool(error.retryable)
                if retryable and attempt < last_attempt:
                    await self.clock.sleep(cfg.retry.delay_for(attempt))
                    attempt += 1
                    continue
                if retryable and self.dlq is not None:
                    self.dlq.push(DeadLetter(action, str(error), attempt + 1, self.clock.now()))
                return failed_from_error(error, attempt + 1)


__all__ = ["Executor", "ExecutorConfig", "failed_from_error", "format_rust_duration"]
