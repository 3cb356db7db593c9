"""Executor: retries, timeouts, DLQ, concurrency (core-pipeline.md §6, scenarios 23-29)."""

from __future__ import annotations

import random

import anyio
import pytest

from acteon import Action, ProviderConnectionError, ProviderExecutionFailed
from acteon._dlq import DeadLetter, DeadLetterQueue
from acteon._executor import Executor, ExecutorConfig
from acteon._retry import RetryStrategy
from acteon.outcomes import Executed, Failed
from acteon.providers import FunctionProvider, ProviderResponse
from acteon.testing import FailingProvider, FakeClock

pytestmark = pytest.mark.anyio


def action() -> Action:
    return Action(namespace="ns", tenant="t", provider="p", action_type="x")


def constant(ms: float) -> RetryStrategy:
    return RetryStrategy(kind="constant", base_delay=ms / 1000, jitter=False)


async def test_non_retryable_fails_on_first_attempt() -> None:
    dlq = DeadLetterQueue()
    ex = Executor(ExecutorConfig(max_retries=3, retry=constant(1)), clock=FakeClock(), dlq=dlq)
    p = FailingProvider("p", script=[ProviderExecutionFailed("permanent")])
    outcome = await ex.execute(action(), p)
    assert outcome == Failed("EXECUTION_FAILED", "execution failed: permanent", False, 1)
    assert len(dlq) == 0


async def test_retryable_exhausts_and_dead_letters() -> None:
    dlq = DeadLetterQueue()
    clock = FakeClock()
    ex = Executor(ExecutorConfig(max_retries=3, retry=constant(1)), clock=clock, dlq=dlq)
    p = FailingProvider("p", script=[ProviderConnectionError("transient")] * 10)
    start = clock.time()
    outcome = await ex.execute(action(), p)
    assert outcome == Failed("CONNECTION", "connection error: transient", True, 4)
    assert p.calls == 4
    assert [e.attempts for e in dlq.list()] == [4]
    assert clock.time() - start == pytest.approx(0.003, abs=1e-6)  # three backoff sleeps on the fake clock


async def test_fail_twice_then_succeed() -> None:
    ex = Executor(ExecutorConfig(max_retries=3, retry=constant(1)), clock=FakeClock())
    p = FailingProvider("p", failures=2)
    outcome = await ex.execute(action(), p)
    assert isinstance(outcome, Executed) and p.calls == 3


async def test_timeout_per_attempt() -> None:
    dlq = DeadLetterQueue()
    ex = Executor(ExecutorConfig(max_retries=0, timeout_seconds=0.1), clock=FakeClock(), dlq=dlq)
    p = FailingProvider("p", kind="timeout", failures=None)
    outcome = await ex.execute(action(), p)
    assert outcome == Failed("TIMEOUT", "timeout after 100ms", True, 1)
    assert len(dlq) == 1


async def test_crashing_provider_is_a_non_retryable_failure() -> None:
    def boom(a: Action) -> None:
        raise KeyError("oops")

    ex = Executor(ExecutorConfig(max_retries=3), clock=FakeClock())
    outcome = await ex.execute(action(), FunctionProvider("p", boom, inline=True))
    assert isinstance(outcome, Failed) and outcome.code == "EXECUTION_FAILED" and not outcome.retryable
    assert outcome.attempts == 1 and isinstance(outcome.cause, KeyError)


async def test_failure_response_is_executed() -> None:
    ex = Executor(ExecutorConfig(), clock=FakeClock())
    outcome = await ex.execute(action(), FunctionProvider("p", lambda a: ProviderResponse.failure({"e": 1}),
                                                          inline=True))
    assert isinstance(outcome, Executed) and outcome.response.status == "failure"


async def test_concurrency_limit_allows_parallel_calls() -> None:
    """max_concurrent 2 with a 2-party barrier: both calls must be in flight together."""
    arrived = 0
    both = anyio.Event()

    async def barrier(a: Action) -> dict[str, bool]:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        with anyio.fail_after(2):
            await both.wait()
        return {"ok": True}

    ex = Executor(ExecutorConfig(max_concurrent=2), clock=FakeClock())
    p = FunctionProvider("p", barrier)
    results: list[object] = []
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(lambda: _run(ex, p, results))
    assert all(isinstance(r, Executed) for r in results) and len(results) == 2


async def _run(ex: Executor, p: FunctionProvider, out: list[object]) -> None:
    out.append(await ex.execute(action(), p))


async def test_concurrency_limit_bounds_in_flight() -> None:
    in_flight = peak = 0

    async def slow(a: Action) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1

    ex = Executor(ExecutorConfig(max_concurrent=3), clock=FakeClock())
    p = FunctionProvider("p", slow)
    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(ex.execute, action(), p)
    assert peak == 3


def test_retry_delays() -> None:
    exp = RetryStrategy("exponential", 0.1, 30, 2.0, jitter=False)
    assert [exp.delay_for(i) for i in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    exp3 = RetryStrategy("exponential", 1.0, 5.0, 3.0, jitter=False)
    assert [exp3.delay_for(i) for i in (0, 1, 2, 10)] == pytest.approx([1, 3, 5, 5])
    lin = RetryStrategy("linear", 0.5, 5.0, jitter=False)
    assert [lin.delay_for(i) for i in (0, 1, 4)] == pytest.approx([0.5, 1.0, 2.5])
    assert RetryStrategy("linear", 2.0, 5.0).delay_for(2) == 5.0
    const = RetryStrategy("constant", 0.25, 30)
    assert {const.delay_for(i) for i in range(10)} == {0.25}


def test_retry_jitter_is_random_within_bound() -> None:
    """D14: base delay plus a uniform 0-40 % extra, capped; the random source is injectable."""
    s = RetryStrategy("exponential", 0.1, 30, 2.0, jitter=True, rng=random.Random(7))
    samples = [s.delay_for(1) for _ in range(500)]
    assert all(0.2 <= d <= 0.28 for d in samples)
    assert len(set(samples)) > 400
    assert RetryStrategy(jitter=True).delay_for(20) == 30.0
    again = RetryStrategy("exponential", 0.1, 30, 2.0, jitter=True, rng=random.Random(7))
    assert [again.delay_for(1) for _ in range(500)] == samples


def test_retry_config_parsing() -> None:
    s = RetryStrategy.from_config({"strategy": "linear", "base_ms": 500, "max_ms": 5000})
    assert (s.kind, s.base_delay, s.max_delay) == ("linear", 0.5, 5.0)
    with pytest.raises(Exception, match="strategy"):
        RetryStrategy.from_config({"strategy": "fibonacci"})


def test_dlq_fifo() -> None:
    from datetime import UTC, datetime

    q = DeadLetterQueue()
    before = datetime.now(UTC)
    for i in (1, 2, 3):
        q.push(DeadLetter(action(), f"e{i}", i, datetime.now(UTC)))
    after = datetime.now(UTC)
    assert len(q) == 3
    drained = q.drain()
    assert [d.error for d in drained] == ["e1", "e2", "e3"]
    assert all(before <= d.timestamp <= after for d in drained)
    assert q.drain() == [] and q.is_empty()
    assert drained[0].to_dict()["attempts"] == 1


@pytest.mark.parametrize("retry,message", [
    ({"base_ms": "abc"}, "executor.retry.base_ms must be a number, got 'abc'"),
    ({"max_ms": -5}, "executor.retry.max_ms must be >= 0"),
    ({"jitter": "yes"}, "executor.retry.jitter must be true or false"),
    ({"multiplier": None}, "executor.retry.multiplier must be a number"),
    ({"base": 1}, "unknown executor.retry keys: base"),
])
def test_bad_retry_config_names_the_key(retry: dict[str, object], message: str) -> None:
    from acteon import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        RetryStrategy.from_config(retry)
