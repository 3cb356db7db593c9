"""Gateway side of resilience: guarded execution, fallbacks, routing, breaker and health APIs.

Mixed into ``AsyncGateway``. ``_execute_action`` hands an action whose
provider has a breaker to :meth:`ResilienceMixin._execute_guarded`, which
follows core-pipeline.md §5.3/§8.5/§8.6 (permit → fallback walk when open →
executor → record). Only retryable failures count against a breaker; a
non-retryable one records nothing (and frees a half-open probe slot).
"""

from __future__ import annotations

import random
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio

from acteon._events import StreamEvent
from acteon._exceptions import ConfigurationError, ProviderNotFoundError, UsageError
from acteon.outcomes import CircuitOpen, Executed, Failed, Outcome, Rerouted
from acteon.resilience.breaker import CircuitBreaker, CircuitBreakerNotFound, CircuitState, Transition
from acteon.resilience.health import ProviderHealthRegistry
from acteon.resilience.routing import RouteConfigError, RouterCache

if TYPE_CHECKING:
    from acteon._action import Action
    from acteon._caller import Caller
    from acteon._clock import Clock
    from acteon._events import EventBus
    from acteon._executor import Executor
    from acteon._metrics import GatewayMetrics
    from acteon.providers._base import Provider
    from acteon.rules import Verdict

_HEALTH_CHECK_TIMEOUT = 10.0


class ResilienceMixin:
    """Circuit breakers, provider health and weighted routing on the gateway."""

    _breakers: dict[str, CircuitBreaker] | None
    _health: ProviderHealthRegistry
    _providers: dict[str, Provider]
    _executor: Executor
    _metrics: GatewayMetrics
    _clock: Clock
    _events: EventBus
    _routers: RouterCache
    _route_rng: random.Random

    # ------------------------------------------------------------------ management

    async def circuit_breakers(self) -> list[dict[str, Any]] | None:
        """Status of every breaker, sorted by provider (§8.7 shape); ``None`` when breakers are off.

        Each entry: ``provider``, ``state`` (``closed``/``open``/``half_open``, read
        from the state store), ``failure_threshold``, ``success_threshold``,
        ``recovery_timeout_seconds`` and ``fallback_provider`` (omitted when none).
        """
        if self._breakers is None:
            return None
        return [b.status(await b.state()) for _, b in sorted(self._breakers.items())]

    async def trip_circuit(self, provider: str) -> dict[str, Any]:
        """Force a provider's breaker open: ``{provider, state: "open", message}``.

        Raises ``UsageError`` when breakers are off and ``CircuitBreakerNotFound``
        for a provider without one.
        """
        breaker = self._breaker_or_raise(provider)
        before = await breaker.state()
        await breaker.trip()
        self._publish_transition(provider, Transition(before, CircuitState.OPEN), manual=True)
        return {"provider": provider, "state": "open", "message": "circuit breaker tripped"}

    async def reset_circuit(self, provider: str) -> dict[str, Any]:
        """Force a provider's breaker closed with empty counters: ``{provider, state: "closed", message}``."""
        breaker = self._breaker_or_raise(provider)
        before = await breaker.state()
        await breaker.reset()
        self._publish_transition(provider, Transition(before, CircuitState.CLOSED), manual=True)
        return {"provider": provider, "state": "closed", "message": "circuit breaker reset"}

    def _breaker_or_raise(self, provider: str) -> CircuitBreaker:
        if self._breakers is None:
            raise UsageError("circuit breakers are not enabled")
        breaker = self._breakers.get(provider)
        if breaker is None:
            raise CircuitBreakerNotFound(provider)
        return breaker

    async def provider_health(self) -> list[dict[str, Any]]:
        """Health and execution figures of every registered provider, in name order.

        Entries have the ``GET /v1/providers/health`` shape (core-pipeline.md §20):
        ``provider``, ``healthy`` (its ``health_check()``; checks run concurrently,
        10 s each at most), ``health_check_error?``, ``circuit_breaker_state?``,
        ``total_requests``, ``successes``, ``failures``, ``success_rate`` (0-100),
        ``avg_latency_ms``, ``p50/p95/p99_latency_ms`` (last 1000 calls),
        ``last_request_at?`` (epoch ms) and ``last_error?``.
        """
        names = sorted(self._providers)
        errors: dict[str, str | None] = {}

        async def check(name: str) -> None:
            try:
                with anyio.fail_after(_HEALTH_CHECK_TIMEOUT):
                    await self._providers[name].health_check()
                errors[name] = None
            except TimeoutError:
                errors[name] = f"health check timed out after {_HEALTH_CHECK_TIMEOUT:g}s"
            except Exception as exc:  # a health check may fail in any way; report it
                errors[name] = str(exc) or type(exc).__name__

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(check, name)
        out: list[dict[str, Any]] = []
        for name in names:
            entry: dict[str, Any] = {"provider": name, "healthy": errors[name] is None}
            if errors[name] is not None:
                entry["health_check_error"] = errors[name]
            breaker = self._breakers.get(name) if self._breakers is not None else None
            if breaker is not None:
                entry["circuit_breaker_state"] = (await breaker.state()).value
            entry.update(self._health.get(name).to_dict())
            out.append(entry)
        return out

    # ------------------------------------------------------------------ execution

    async def _run_provider(self, action: Action, name: str, provider: Provider) -> Outcome:
        """The executor on one provider, timed into the health statistics."""
        started = perf_counter()
        outcome = await self._executor.execute(action, provider)
        self._health.record(name, outcome, perf_counter() - started)
        return outcome

    async def _execute_guarded(self, action: Action, name: str, breaker: CircuitBreaker, reroute: bool) -> Outcome:
        """Execute ``action`` on provider ``name`` through its breaker (§5.3 steps 1-5).

        ``reroute`` (weighted routing to another provider) turns ``Executed`` into
        ``Rerouted`` and counts ``rerouted`` instead of ``executed``.
        """
        probing = False
        now = self._clock.time()
        cached = breaker.cached_from <= now < breaker.cached_until  # closed_cached(), inlined: hot path
        if not cached:
            state, transition = await breaker.try_acquire_permit()
            if transition is not None:
                self._note_transition(name, transition)
            if state is CircuitState.OPEN:
                return await self._fallback(action, name, breaker)
            probing = state is CircuitState.HALF_OPEN
        provider = self._providers.get(name)
        if provider is None:
            self._metrics.failed += 1
            return Failed("PROVIDER_NOT_FOUND", f"provider not found: {name}", False, 0)
        started = perf_counter()
        outcome = await self._executor.execute(action, provider)
        self._health.record(name, outcome, perf_counter() - started)
        if not (cached and type(outcome) is Executed):
            # Closed with no failures (the cached view) makes a success a no-op: skip the store.
            await self._record(name, breaker, outcome, probing)
        if type(outcome) is Executed:
            if reroute:
                self._metrics.rerouted += 1
                return Rerouted(action.provider, name, outcome.response)
            self._metrics.executed += 1
        else:
            self._metrics.failed += 1
        return outcome

    async def _record(self, name: str, breaker: CircuitBreaker, outcome: Outcome, probing: bool) -> None:
        transition: Transition | None = None
        if type(outcome) is Executed:
            # The permit may have just refreshed the cached Closed view, which makes this a no-op.
            if probing or not breaker.closed_cached(self._clock.time()):
                transition = await breaker.record_success()
        elif isinstance(outcome, Failed) and outcome.retryable:
            transition = await breaker.record_failure()
        elif probing:
            await breaker.release_probe()
        if transition is not None:
            self._note_transition(name, transition)

    async def _fallback(self, action: Action, primary: str, breaker: CircuitBreaker) -> Outcome:
        """Walk the fallback chain of an open breaker (§8.5) and run the first usable provider (§8.6)."""
        breakers = self._breakers or {}
        chain: list[str] = []
        visited = {primary}
        current = breaker
        while True:
            fallback = current.config.fallback_provider
            if fallback is None or fallback in visited:
                break
            visited.add(fallback)
            chain.append(fallback)
            provider = self._providers.get(fallback)
            if provider is None:
                break
            fb_breaker = breakers.get(fallback)
            probing = False
            cached = fb_breaker is None or fb_breaker.closed_cached(self._clock.time())
            if fb_breaker is not None and not cached:
                state, transition = await fb_breaker.try_acquire_permit()
                if transition is not None:
                    self._note_transition(fallback, transition)
                if state is CircuitState.OPEN:
                    current = fb_breaker
                    continue
                probing = state is CircuitState.HALF_OPEN
            outcome = await self._run_provider(action, fallback, provider)
            if fb_breaker is not None and not (cached and type(outcome) is Executed):
                await self._record(fallback, fb_breaker, outcome, probing)
            self._metrics.circuit_fallbacks += 1
            if type(outcome) is Executed:
                return Rerouted(action.provider, fallback, outcome.response)
            return outcome
        self._metrics.circuit_open += 1
        return CircuitOpen(primary, chain)

    def _note_transition(self, provider: str, transition: Transition) -> None:
        self._metrics.circuit_transitions += 1
        self._publish_transition(provider, transition, manual=False)

    def _publish_transition(self, provider: str, transition: Transition, *, manual: bool) -> None:
        if not self._events.has_subscribers:
            return
        self._events.publish(
            StreamEvent(
                "circuit_state_changed",
                self._clock.now(),
                "_system",
                "_global",
                data={
                    "provider": provider,
                    "from_state": transition.from_state.value,
                    "to_state": transition.to_state.value,
                    "manual": manual,
                },
            )
        )

    # ------------------------------------------------------------------ weighted routing

    def _pick_route(self, action: Action, verdict: Verdict) -> str:
        try:
            params = verdict.params
            router = self._routers.get(params.get("targets"), params.get("strategy"))
        except RouteConfigError as exc:
            raise ConfigurationError(f"weighted_route rule '{verdict.rule}': {exc.detail} ({exc.key})") from None
        return router.pick(action.id, self._route_rng)

    async def _handle_weighted_route(
        self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None
    ) -> Outcome:
        """``weighted_route`` verdict: pick a target, then execute as ``_execute_action`` would.

        The chosen provider's breaker and fallbacks apply. ``Executed`` when the
        pick is the action's own provider, ``Rerouted`` (counted as ``rerouted``)
        when it is another one; an unregistered pick raises like a reroute.
        """
        name = self._pick_route(action, verdict)
        provider = self._providers.get(name)
        if provider is None:
            raise ProviderNotFoundError(name)
        reroute = name != action.provider
        breaker = self._breakers.get(name) if self._breakers is not None else None
        if breaker is not None:
            return await self._execute_guarded(action, name, breaker, reroute)
        outcome = await self._run_provider(action, name, provider)
        if type(outcome) is Executed:
            if reroute:
                self._metrics.rerouted += 1
                return Rerouted(action.provider, name, outcome.response)
            self._metrics.executed += 1
        else:
            self._metrics.failed += 1
        return outcome

    def _dry_run_weighted_route(self, action: Action, verdict: Verdict) -> str:
        return self._pick_route(action, verdict)
