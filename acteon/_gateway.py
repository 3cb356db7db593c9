"""``AsyncGateway``: construction, lifecycle and the dispatch pipeline.

One dispatch (core-pipeline.md §5, with DECISIONS D7-D9, D13):

1. evaluate the rules (pure reads; an error fails closed, is audited and raised);
2. take the per-action dispatch lock -- together with the verdict's one state
   change (dedup marker, throttle counter) when the store can do both at once;
3. run the verdict handler (execute, suppress, reroute, ...);
4. write one audit record and publish one event;
5. release the lock on every path.

Management methods (rules, audit, DLQ, events, health) live in
``acteon._management``; the blocking twin is ``acteon.Gateway``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, Self, cast

import anyio
from anyio.abc import TaskGroup

from acteon._action import Action, coerce_action
from acteon._audit_builder import AuditBuilder
from acteon._background import TickSummary, run_job, run_jobs
from acteon._caller import Caller
from acteon._clock import SYSTEM_CLOCK, Clock
from acteon._dlq import DeadLetterQueue
from acteon._events import EventBus, StreamEvent
from acteon._exceptions import (
    ActeonError,
    ConfigurationError,
    LockFailed,
    NotSupportedError,
    ProviderNotFoundError,
    RuleEvaluationError,
    StateError,
    StateTimeout,
)
from acteon._executor import Executor
from acteon._management import ManagementMixin
from acteon._replay import ReplayMixin
from acteon._settings import GatewayConfig
from acteon._subscriptions import EntityCatchup, SubscriptionsMixin
from acteon.audit._base import AuditStore
from acteon.budget._api import BudgetMixin
from acteon.budget._model import BudgetPolicy
from acteon.chains._api import ChainsMixin
from acteon.outcomes import (
    Deduplicated,
    DryRun,
    Executed,
    Failed,
    Outcome,
    Rerouted,
    Suppressed,
    Throttled,
    sanitize_outcome_wire,
)
from acteon.providers._base import Provider
from acteon.quotas._api import QuotasMixin
from acteon.quotas._model import QuotaPolicy
from acteon.resilience._api import ResilienceMixin
from acteon.resilience.breaker import CircuitBreaker
from acteon.resilience.health import ProviderHealthRegistry
from acteon.resilience.settings import CircuitBreakerSettings
from acteon.rules import RuleSet, Verdict, load_rules, load_rules_dir, merge_patch
from acteon.rules._context import Lookup
from acteon.rules._watch import RulesWatchMixin
from acteon.scheduling._api import SchedulingMixin
from acteon.scheduling._config import SchedulingConfig
from acteon.state._base import LockGuard, StateStore
from acteon.state.memory import MemoryStateStore
from acteon.workflows._approvals_api import ApprovalsMixin
from acteon.workflows._groups_api import GroupsMixin
from acteon.workflows._state_machines_api import StateMachinesMixin

_log = logging.getLogger("acteon.gateway")

# Upstream reports no rule name for these verdicts in audit and dry-run output.
_NAMELESS_VERDICTS = frozenset({"allow", "deduplicate"})

RulesArg = RuleSet | str | os.PathLike[str] | Iterable[Any] | None

VerdictHandler = Callable[[Action, Verdict, datetime, "Caller | None"], Awaitable[Outcome]]
"""Handles one verdict kind under the dispatch lock; registered by workflow features."""
AdmissionHook = Callable[[Action, datetime], Awaitable["Action | Outcome"]]
"""Runs before the rules (quotas): returns the action to go on with, or an outcome that ends
the dispatch (audited with verdict ``allow``, as upstream's quota short-circuit)."""
BackgroundJob = Callable[[datetime], Awaitable[int]]
"""One background job: does what is due at the given time, returns how many items it handled."""
DeferralHook = Callable[[Action, datetime], Awaitable["Outcome | None"]]
"""Takes an action whose ``dispatch_at`` is set, after admission and before the rules:
an outcome (``Scheduled``) when it was stored for later, ``None`` to dispatch it now."""
RouteHook = Callable[[Action], Awaitable["Outcome | None"]]
"""Runs before an allowed action executes (cost-aware downgrade): an outcome if it executed
the action elsewhere, ``None`` to execute as asked."""
OutcomeHook = Callable[[Action, Outcome], Awaitable[None]]
"""Sees every finished dispatch before it is audited (spend metering)."""
ProvidersArg = Iterable[Provider] | Mapping[str, Provider] | None


def _is_existing_path(value: object) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if not isinstance(value, str) or "\n" in value or len(value) > 1024:
        return False
    try:
        return Path(value).exists()
    except OSError:
        return False


def _coerce_rules(rules: RulesArg) -> RuleSet:
    """A RuleSet from a RuleSet, a rules file or folder path, YAML text, or Rule objects."""
    if rules is None:
        return RuleSet()
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str | os.PathLike):
        if _is_existing_path(rules):
            path = Path(rules)
            return load_rules_dir(path) if path.is_dir() else load_rules(path)
        return load_rules(str(rules))
    return RuleSet(cast(Iterable[Any], rules))


def _coerce_providers(providers: ProvidersArg) -> dict[str, Provider]:
    if providers is None:
        return {}
    if isinstance(providers, Mapping):
        return dict(providers)
    out: dict[str, Provider] = {}
    for p in providers:
        if not isinstance(p, Provider):
            raise ConfigurationError(f"providers must be Provider instances, got {type(p).__name__}")
        if not p.name:
            raise ConfigurationError(f"provider {p!r} has no name")
        out[p.name] = p
    return out


class AsyncGateway(
    ApprovalsMixin, SubscriptionsMixin, ManagementMixin, RulesWatchMixin, ResilienceMixin, QuotasMixin, BudgetMixin,
    SchedulingMixin, GroupsMixin, StateMachinesMixin, ChainsMixin, ReplayMixin,
):
    """The action gateway (async; runs on asyncio and trio through anyio).

    ::

        async with AsyncGateway(rules="rules/", state=MemoryStateStore(),
                                providers=[LogProvider("email")]) as gw:
            outcome = await gw.dispatch(action)

    ``state`` and ``audit`` take a store object or a URL (``memory://``,
    ``sqlite:///file.db``, ``redis://host:port/db``). ``audit=None`` disables
    the audit trail. ``clock`` drives every TTL, window, schedule and timeout.
    ``background=False`` keeps ``async with`` from starting the background loop
    (call :meth:`tick` yourself).
    ``watch_rules=True`` reloads the rules on each tick when the rule files or
    directory they came from changed (a failed reload keeps the current rules).
    """

    def __init__(
        self,
        *,
        rules: RulesArg = None,
        state: StateStore | str | None = None,
        audit: AuditStore | str | None = None,
        providers: ProvidersArg = None,
        config: GatewayConfig | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        background: bool = True,
        chains: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        state_machines: Sequence[Mapping[str, Any]] | None = None,
        approval_keys: Sequence[Mapping[str, Any]] | None = None,
        watch_rules: bool = False,
        circuit_breaker: CircuitBreakerSettings | Mapping[str, Any] | bool | None = None,
        quota_policies: Sequence[QuotaPolicy | Mapping[str, Any]] | None = None,
        provider_costs: Mapping[str, float] | None = None,
        budgets: Sequence[BudgetPolicy | Mapping[str, Any]] | None = None,
        scheduling: SchedulingConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if config is None:
            config = GatewayConfig()
        elif not isinstance(config, GatewayConfig):
            config = GatewayConfig.model_validate(dict(config))
        self._config = config
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._owned: list[Any] = []

        if state is None:
            state = MemoryStateStore()
        elif isinstance(state, str):
            from acteon.state._open import open_state_store

            state = open_state_store(state)
            self._owned.append(state)
        self._state: StateStore = state
        if isinstance(audit, str):
            from acteon.audit._open import open_audit_store

            audit = open_audit_store(audit)
            self._owned.append(audit)
        self._audit: AuditStore | None = audit
        if clock is not None:
            self._state.use_clock(self._clock)
            if self._audit is not None:
                self._audit.use_clock(self._clock)
        self._lock = self._state.distributed_lock()
        if clock is not None:
            self._lock.use_clock(self._clock)

        self._rules = _coerce_rules(rules)
        self._rules_source: Any = rules if _is_existing_path(rules) else None
        self._providers = _coerce_providers(providers)
        self._env = dict(config.environment)
        self._tz = config.default_timezone
        self._dlq = DeadLetterQueue() if config.executor.dlq_enabled else None
        self._executor = Executor(config.executor.build(), clock=self._clock, dlq=self._dlq)
        self._events = EventBus(config.event_buffer_size, now=self._clock.now)
        self._audit_builder = AuditBuilder(config.audit_store_payload, config.audit_ttl_seconds)
        self._lock_ttl = config.dispatch_lock_ttl_seconds
        self._lock_timeout = config.dispatch_lock_timeout_seconds
        self._background = background
        self._started = False
        self._closed = False
        self._task_group: TaskGroup | None = None
        self._verdict_handlers: dict[str, VerdictHandler] = {}
        self._admission_hooks: list[AdmissionHook] = []
        self._jobs: dict[str, BackgroundJob] = {}
        self._deferral_hook: DeferralHook | None = None  # ``dispatch_at`` (acteon.scheduling)
        self._route_hooks: list[RouteHook] = []
        self._outcome_hooks: list[OutcomeHook] = []
        self._rule_lookups: dict[str, Lookup] = {}  # identifiers rules may read (``budget``)
        self._entity_catchup: dict[str, EntityCatchup] = {}
        # Dry-run answer for ``would_be_provider`` per verdict kind a feature adds (weighted_route).
        self._dry_run_providers: dict[str, Callable[[Action, Verdict], str]] = {}
        self._breakers: dict[str, CircuitBreaker] | None = None  # set by acteon.resilience
        self._health = ProviderHealthRegistry(self._clock)
        self._init_management()
        from acteon._features import attach_features

        attach_features(
            self,
            {"chains": chains, "state_machines": state_machines,
             "approval_keys": approval_keys, "watch_rules": watch_rules,
             "circuit_breaker": circuit_breaker, "quota_policies": quota_policies,
             "provider_costs": provider_costs, "budgets": budgets, "scheduling": scheduling},
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the stores. ``async with`` calls it; dispatch calls it on first use."""
        if self._started:
            return
        await self._state.start()
        if self._audit is not None:
            await self._audit.start()
        self._started = True

    async def aclose(self) -> None:
        """Flush the audit trail and close what the gateway opened. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._audit is not None:
            await self._audit.flush()
        for resource in reversed(self._owned):
            await resource.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        if self._background:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._background_loop)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                await self._task_group.__aexit__(et, e, tb)
                self._task_group = None
        finally:
            await self.aclose()

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any) -> Self:
        """Build a gateway from a TOML/YAML file or a dict (server-api.md §5 sections)."""
        from acteon._config import gateway_kwargs_from_config

        kwargs = gateway_kwargs_from_config(source)
        owned = kwargs.pop("_owned_resources", [])
        rules_source = kwargs.pop("_rules_source", None)
        kwargs.update(overrides)
        gw = cls(**kwargs)
        gw._owned.extend(r for r in owned if r not in gw._owned)
        gw._rules_source = rules_source
        watcher = getattr(gw, "_rules_watcher", None)
        if watcher is not None:  # hot reload: the baseline is the files just loaded
            watcher.prime()
        return gw

    @property
    def config(self) -> GatewayConfig:
        """The gateway's settings."""
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def state(self) -> StateStore:
        return self._state

    @property
    def audit(self) -> AuditStore | None:
        return self._audit

    # ------------------------------------------------------------------ dispatch

    async def dispatch(
        self, action: Action | Mapping[str, Any], *, dry_run: bool = False, caller: Caller | None = None
    ) -> Outcome:
        """Run one action through the pipeline and return its outcome.

        Raises ``RuleEvaluationError`` (audited), ``LockFailed``,
        ``ProviderNotFoundError`` (reroute to an unknown provider), ``StateError``
        or ``NotSupportedError`` when the gateway cannot decide or run.
        """
        if type(action) is not Action:
            action = coerce_action(action)
        if not self._started:
            await self.start()
        if dry_run:
            return await self._dry_run(action)
        self._metrics.dispatched += 1
        started = perf_counter()
        now = self._clock.now()
        if self._admission_hooks:
            for hook in self._admission_hooks:
                admitted = await hook(action, now)
                if isinstance(admitted, Outcome):
                    await self._finish(action, "allow", None, admitted, now, started, caller)
                    return admitted
                action = admitted
        if action.dispatch_at is not None:
            deferred = await self._defer(action, now, started, caller)
            if deferred is not None:
                return deferred
        try:
            verdict: Verdict = await self._rules.aevaluate(
                action, now=now, state=self._state, env=self._env, timezone=self._tz, lookups=self._rule_lookups
            )
        except RuleEvaluationError as exc:
            self._metrics.rule_errors += 1
            await self._record_error(action, "error", None, exc, now, started, caller)
            raise
        kind = verdict.kind
        ns, tenant = action.namespace, action.tenant
        lock_name = f"dispatch:{ns}:{tenant}:{action.id}"
        guard: LockGuard | None = None
        try:
            if kind == "deduplicate":
                dedup_id = action.dedup_key or action.id
                key = f"{ns}:{tenant}:dedup:{dedup_id}"
                guard, created = await self._state.claim_and_check_and_set(
                    lock_name, self._lock_ttl, key, "1", verdict.ttl_seconds
                )
                if guard is None:
                    guard = await self._wait_for_lock(lock_name)
                    created = await self._state.check_and_set(key, "1", verdict.ttl_seconds)
                if created:
                    outcome = await self._execute_action(action)
                else:
                    self._metrics.deduplicated += 1
                    outcome = Deduplicated()
            elif kind == "throttle":
                guard, outcome = await self._throttle(action, verdict, lock_name, now)
            else:
                guard = await self._lock.try_acquire(lock_name, self._lock_ttl)
                if guard is None:
                    guard = await self._wait_for_lock(lock_name)
                outcome = await self._handle(action, verdict, now, caller)
        except ActeonError as exc:
            if not isinstance(exc, LockFailed):
                await self._record_error(action, kind, verdict.rule, exc, now, started, caller)
            raise
        finally:
            if guard is not None:
                await guard.release_deferred()

        matched = None if kind in _NAMELESS_VERDICTS else verdict.rule
        await self._finish(action, kind, matched, outcome, now, started, caller)
        return outcome

    async def _defer(self, action: Action, now: datetime, started: float, caller: Caller | None) -> Outcome | None:
        """``dispatch_at`` set: the deferral hook stores a future action (rules run at delivery)."""
        try:
            if self._deferral_hook is None:
                raise NotSupportedError("scheduled delivery (dispatch_at) is not enabled on this gateway")
            outcome = await self._deferral_hook(action, now)
        except ActeonError as exc:
            await self._record_error(action, "schedule", None, exc, now, started, caller)
            raise
        if outcome is not None:
            await self._finish(action, "schedule", None, outcome, now, started, caller)
        return outcome

    async def _finish(
        self,
        action: Action,
        verdict: str,
        matched: str | None,
        outcome: Outcome,
        now: datetime,
        started: float,
        caller: Caller | None,
    ) -> None:
        """Audit and publish one finished dispatch."""
        if self._outcome_hooks:
            for hook in self._outcome_hooks:
                await hook(action, outcome)
        record_id: str | None = None
        if self._audit is not None:
            record = self._audit_builder.build(action, verdict, matched, outcome, now, self._clock.now(),
                                               started, caller)
            await self._audit.record(record)
            record_id = record.id
        if self._events.has_subscribers:
            # The event reuses the audit record's id (workflows.md §1.2): a reconnecting
            # stream client resumes from it through the audit trail.
            self._publish_outcome(action, outcome, record_id)

    async def dispatch_batch(
        self,
        actions: Sequence[Action | Mapping[str, Any]],
        *,
        dry_run: bool = False,
        caller: Caller | None = None,
    ) -> list[Outcome | ActeonError]:
        """Dispatch many actions, at most ``batch_concurrency`` at once.

        Results come back in input order. An item that raised is returned as
        its exception (an ``ActeonError``), so one bad item never fails the batch.
        """
        results: list[Outcome | ActeonError | None] = [None] * len(actions)
        limiter = anyio.CapacityLimiter(self._config.batch_concurrency)

        async def one(index: int, item: Action | Mapping[str, Any]) -> None:
            async with limiter:
                try:
                    results[index] = await self.dispatch(item, dry_run=dry_run, caller=caller)
                except ActeonError as exc:
                    results[index] = exc

        async with anyio.create_task_group() as tg:
            for index, item in enumerate(actions):
                tg.start_soon(one, index, item)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ pipeline parts

    async def _wait_for_lock(self, lock_name: str) -> LockGuard:
        try:
            return await self._lock.acquire(lock_name, self._lock_ttl, self._lock_timeout)
        except StateTimeout as exc:
            raise LockFailed(str(exc)) from exc

    async def _throttle(
        self, action: Action, verdict: Verdict, lock_name: str, now: datetime
    ) -> tuple[LockGuard, Outcome]:
        """Fixed epoch-aligned window per rule and (namespace, tenant) -- DECISIONS D7."""
        window = max(int(verdict.window_seconds), 1)
        now_s = now.timestamp()
        window_end_ms = (int(now_s) // window + 1) * window * 1000
        key = f"{action.namespace}:{action.tenant}:rate_limit:{verdict.rule}"
        count: int | None
        guard: LockGuard | None = None
        try:
            guard, count = await self._state.claim_and_increment_window(
                lock_name, self._lock_ttl, key, 1, window_end_ms
            )
            if guard is None:
                guard = await self._wait_for_lock(lock_name)
                count = await self._state.increment_window(key, 1, window_end_ms)
        except StateError as exc:
            # A broken counter must not stop traffic: fail open, as upstream does.
            _log.warning("throttle counter %s unavailable (%s); allowing", key, exc)
            if guard is None:
                guard = await self._wait_for_lock(lock_name)
            count = None
        try:
            if count is None or count <= int(verdict.max_count):
                return guard, await self._execute_action(action)
            self._metrics.throttled += 1
            retry_ms = max(window_end_ms - int(now_s * 1000), 0)
            return guard, Throttled(timedelta(milliseconds=retry_ms))
        except BaseException:
            await guard.release()
            raise

    async def _handle(self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None) -> Outcome:
        kind = verdict.kind
        if kind == "allow":
            return await self._execute_action(action)
        if kind in ("suppress", "deny"):
            self._metrics.suppressed += 1
            return Suppressed(verdict.rule or "")
        if kind == "modify":
            patched = merge_patch(action.payload, verdict.changes)
            return await self._execute_action(action.model_copy(update={"payload": patched}))
        if kind == "reroute":
            return await self._reroute(action, verdict.target_provider)
        handler = self._verdict_handlers.get(kind)
        if handler is not None:
            return await handler(action, verdict, now, caller)
        raise NotSupportedError(f"verdict kind '{kind}' (rule '{verdict.rule}') is not supported")

    async def _execute_action(self, action: Action) -> Outcome:
        if self._route_hooks:
            for route in self._route_hooks:
                routed = await route(action)
                if routed is not None:
                    return routed
        name = action.provider
        if self._breakers is not None:
            breaker = self._breakers.get(name)
            if breaker is not None:
                return await self._execute_guarded(action, name, breaker, False)
        provider = self._providers.get(name)
        if provider is None:
            self._metrics.failed += 1
            return Failed("PROVIDER_NOT_FOUND", f"provider not found: {name}", False, 0)
        started = perf_counter()
        outcome = await self._executor.execute(action, provider)
        self._health.record(name, outcome, perf_counter() - started)
        if type(outcome) is Executed:
            self._metrics.executed += 1
        else:
            self._metrics.failed += 1
        return outcome

    async def _reroute(self, action: Action, target: str) -> Outcome:
        provider = self._providers.get(target)
        if provider is None:
            raise ProviderNotFoundError(target)
        outcome = await self._run_provider(action, target, provider)
        if isinstance(outcome, Executed):
            self._metrics.rerouted += 1
            return Rerouted(action.provider, target, outcome.response)
        self._metrics.failed += 1
        return outcome

    async def _dry_run(self, action: Action) -> Outcome:
        """Evaluate only: no lock, counters, state writes, provider calls, audit or events (D13)."""
        verdict = await self._rules.aevaluate(
            action, now=self._clock.now(), state=self._state, env=self._env, timezone=self._tz,
            lookups=self._rule_lookups,
        )
        kind = verdict.kind
        provider = verdict.target_provider if kind == "reroute" else action.provider
        if kind in self._dry_run_providers:
            provider = self._dry_run_providers[kind](action, verdict)
        matched = None if kind in _NAMELESS_VERDICTS else verdict.rule
        return DryRun(kind, matched, provider)

    async def _record_error(
        self,
        action: Action,
        verdict: str,
        rule: str | None,
        error: BaseException,
        now: datetime,
        started: float,
        caller: Caller | None,
    ) -> None:
        """Audit a dispatch that raised (rule errors per D9, and handler errors)."""
        if self._audit is None:
            return
        record = self._audit_builder.build_error(action, verdict, rule, error, now, self._clock.now(),
                                                 started, caller)
        try:
            await self._audit.record(record)
        except ActeonError as exc:  # never mask the original error
            _log.error("could not audit failed dispatch %s: %s", action.id, exc)

    def _publish_outcome(self, action: Action, outcome: Outcome, event_id: str | None = None) -> None:
        event = StreamEvent(
            "action_dispatched",
            self._clock.now(),
            action.namespace,
            action.tenant,
            action.action_type,
            action.id,
            {"outcome": sanitize_outcome_wire(outcome), "provider": action.provider},
            id=event_id or "",
            outcome_kind=outcome.kind,
        )
        self._events.publish(event)

    # ------------------------------------------------------------------ background

    async def tick(self) -> TickSummary:
        """Run, once, every background job due at the clock's current time.

        Returns a summary ``{job_name: items_handled}`` (a ``dict``); a job that
        raised is logged, counted 0 and listed in ``summary.errors`` -- it never
        stops the other jobs (``acteon._background``). The background loop of
        ``async with`` calls this every ``background_interval_seconds``.
        """
        if not self._started:
            await self.start()
        now = self._clock.now()
        summary = await run_jobs(self._jobs, now)
        await run_job(summary, "state_swept", lambda _now: self._state.sweep_expired(), now)
        await run_job(summary, "locks_swept", lambda _now: self._lock.sweep_expired(), now)
        if self._audit is not None and self._config.audit_ttl_seconds is not None:
            audit = self._audit
            await run_job(summary, "audit_expired", lambda _now: audit.cleanup_expired(), now)
        return summary

    async def _background_loop(self) -> None:
        interval = self._config.background_interval_seconds
        while True:
            try:
                await self.tick()
            except Exception:  # keep the loop alive whatever one tick did; tick() logs per job
                _log.exception("background tick failed")
            await anyio.sleep(interval)
