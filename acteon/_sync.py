"""``Gateway``: the blocking twin of ``AsyncGateway``.

It owns one ``AsyncGateway`` running on an event loop in a private thread
(an anyio blocking portal) and forwards every call to it, so there is one
implementation of each behaviour and exceptions cross over unchanged. Use it
from scripts, Django/Flask views and Celery tasks; async code should use
``AsyncGateway`` directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from acteon._action import Action
from acteon._background import TickSummary
from acteon._caller import Caller
from acteon._clock import Clock
from acteon._dlq import DeadLetter
from acteon._events import EventFilter, StreamEvent
from acteon._exceptions import ActeonError, UsageError
from acteon._gateway import AsyncGateway, ProvidersArg, RulesArg
from acteon._metrics import GatewayMetrics
from acteon._replay import BulkReplaySummary, ReplayResult
from acteon._settings import GatewayConfig
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord
from acteon.budget._model import BudgetPolicy
from acteon.chains._sync import ChainsSyncMixin
from acteon.outcomes import Outcome, StateChanged
from acteon.providers._base import Provider
from acteon.quotas._model import QuotaPolicy
from acteon.quotas._sync import QuotasSyncMixin
from acteon.resilience.settings import CircuitBreakerSettings
from acteon.rules import EvaluationTrace, RuleSet
from acteon.scheduling._config import SchedulingConfig
from acteon.scheduling._model import RecurringAction, ScheduledAction
from acteon.state._base import StateStore
from acteon.workflows._approval_model import Approval, ApprovalLinks

T = TypeVar("T")


class Gateway(QuotasSyncMixin, ChainsSyncMixin):
    """Blocking gateway: ``with Gateway(...) as gw: gw.dispatch(action)``.

    Takes exactly the keyword arguments of :class:`AsyncGateway`. Calls made
    before ``with``/:meth:`start` start the loop thread on demand; :meth:`close`
    stops it (calling it twice is harmless).
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
        self._async = AsyncGateway(
            rules=rules,
            state=state,
            audit=audit,
            providers=providers,
            config=config,
            clock=clock,
            background=background,
            chains=chains,
            state_machines=state_machines,
            approval_keys=approval_keys,
            watch_rules=watch_rules,
            circuit_breaker=circuit_breaker,
            quota_policies=quota_policies,
            provider_costs=provider_costs,
            budgets=budgets,
            scheduling=scheduling,
        )
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._mutex = threading.Lock()

    @classmethod
    def _wrap(cls, inner: AsyncGateway) -> Self:
        obj = cls.__new__(cls)
        obj._async = inner
        obj._stack = ExitStack()
        obj._portal = None
        obj._mutex = threading.Lock()
        return obj

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any) -> Self:
        """Build from a TOML/YAML file or dict, like :meth:`AsyncGateway.from_config`."""
        return cls._wrap(AsyncGateway.from_config(source, **overrides))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the loop thread and the gateway (``with`` does this)."""
        with self._mutex:
            if self._portal is not None:
                return
            portal = self._stack.enter_context(start_blocking_portal("asyncio"))
            self._stack.enter_context(portal.wrap_async_context_manager(self._async))
            self._portal = portal

    def close(self) -> None:
        """Stop the gateway (flushing the audit trail) and its loop thread."""
        with self._mutex:
            self._portal = None
            self._stack.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._portal is None:
            self.start()
        portal = self._portal
        if portal is None:  # pragma: no cover - start() sets it
            raise UsageError("the gateway is closed")
        try:
            return portal.call(lambda: fn(*args, **kwargs))
        except RuntimeError as exc:
            if "event loop thread" in str(exc) or "same thread" in str(exc):
                raise UsageError(
                    "Gateway (blocking) was called from its own event-loop thread; "
                    "use AsyncGateway in async code"
                ) from exc
            raise

    async def _run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def _call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result: T = self._call(self._run_sync, fn, *args, **kwargs)
        return result

    # ------------------------------------------------------------------ properties

    @property
    def async_gateway(self) -> AsyncGateway:
        """The ``AsyncGateway`` this object drives."""
        return self._async

    @property
    def metrics(self) -> GatewayMetrics:
        return self._async.metrics

    @property
    def clock(self) -> Clock:
        return self._async.clock

    @property
    def state(self) -> StateStore:
        return self._async.state

    @property
    def audit(self) -> AuditStore | None:
        return self._async.audit

    @property
    def rules(self) -> RuleSet:
        return self._async.rules

    @property
    def rules_reload_error(self) -> str | None:
        """Why the last hot reload failed, or ``None`` (see :attr:`AsyncGateway.rules_reload_error`)."""
        return self._async.rules_reload_error

    @property
    def providers(self) -> dict[str, Provider]:
        return self._async.providers

    @property
    def config(self) -> GatewayConfig:
        return self._async.config

    @property
    def state_machines(self) -> dict[str, dict[str, Any]]:
        return self._async.state_machines

    # ------------------------------------------------------------------ dispatch

    def dispatch(
        self, action: Action | Mapping[str, Any], *, dry_run: bool = False, caller: Caller | None = None
    ) -> Outcome:
        """Blocking :meth:`AsyncGateway.dispatch`: same arguments, result and errors."""
        result: Outcome = self._call(self._async.dispatch, action, dry_run=dry_run, caller=caller)
        return result

    def dispatch_batch(
        self,
        actions: Sequence[Action | Mapping[str, Any]],
        *,
        dry_run: bool = False,
        caller: Caller | None = None,
    ) -> list[Outcome | ActeonError]:
        """Blocking :meth:`AsyncGateway.dispatch_batch` (input order kept)."""
        result: list[Outcome | ActeonError] = self._call(
            self._async.dispatch_batch, actions, dry_run=dry_run, caller=caller
        )
        return result

    def tick(self) -> TickSummary:
        """Blocking :meth:`AsyncGateway.tick`."""
        result: TickSummary = self._call(self._async.tick)
        return result

    # ------------------------------------------------------------------ management

    def reload_rules(self, rules: RuleSet | str | os.PathLike[str] | None = None) -> int:
        return self._call_sync(self._async.reload_rules, rules)

    def enable_rule(self, name: str) -> bool:
        return self._call_sync(self._async.enable_rule, name)

    def disable_rule(self, name: str) -> bool:
        return self._call_sync(self._async.disable_rule, name)

    def evaluate_rules(
        self,
        action: Action | Mapping[str, Any],
        *,
        include_disabled: bool = False,
        evaluate_all: bool = False,
        evaluate_at: datetime | None = None,
        mock_state: Mapping[str, str] | None = None,
    ) -> EvaluationTrace:
        result: EvaluationTrace = self._call(
            self._async.evaluate_rules,
            action,
            include_disabled=include_disabled,
            evaluate_all=evaluate_all,
            evaluate_at=evaluate_at,
            mock_state=mock_state,
        )
        return result

    def register_provider(self, provider: Provider) -> None:
        self._call_sync(self._async.register_provider, provider)

    def provider_health(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(self._async.provider_health)
        return result

    def circuit_breakers(self) -> list[dict[str, Any]] | None:
        result: list[dict[str, Any]] | None = self._call(self._async.circuit_breakers)
        return result

    def trip_circuit(self, provider: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self._async.trip_circuit, provider)
        return result

    def reset_circuit(self, provider: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self._async.reset_circuit, provider)
        return result

    def audit_query(self, query: AuditQuery | Mapping[str, Any] | None = None) -> AuditPage:
        result: AuditPage = self._call(self._async.audit_query, query)
        return result

    def audit_get(self, action_id: str) -> AuditRecord | None:
        result: AuditRecord | None = self._call(self._async.audit_get, action_id)
        return result

    def replay_action(self, action_id: str, *, caller: Caller | None = None) -> ReplayResult:
        """Blocking :meth:`AsyncGateway.replay_action`."""
        result: ReplayResult = self._call(self._async.replay_action, action_id, caller=caller)
        return result

    def replay_audit(
        self, query: AuditQuery | Mapping[str, Any] | None = None, *, caller: Caller | None = None
    ) -> BulkReplaySummary:
        """Blocking :meth:`AsyncGateway.replay_audit`."""
        result: BulkReplaySummary = self._call(self._async.replay_audit, query, caller=caller)
        return result

    def dlq_enabled(self) -> bool:
        return self._async.dlq_enabled()

    def dlq_list(self) -> list[DeadLetter]:
        return self._call_sync(self._async.dlq_list)

    def dlq_drain(self) -> list[DeadLetter]:
        return self._call_sync(self._async.dlq_drain)

    def events(
        self,
        filter: EventFilter | None = None,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        action_type: str | None = None,
        outcome: str | None = None,
        event_type: str | None = None,
        action_id: str | None = None,
        group_id: str | None = None,
        chain_id: str | None = None,
    ) -> BlockingSubscription:
        """Subscribe; iterate the returned object (blocking) or call ``get(timeout)``."""
        sub = self._call_sync(
            self._async.events,
            filter,
            namespace=namespace,
            tenant=tenant,
            action_type=action_type,
            outcome=outcome,
            event_type=event_type,
            action_id=action_id,
            group_id=group_id,
            chain_id=chain_id,
        )
        return BlockingSubscription(self, sub)

    def subscribe_entity(
        self,
        entity_type: str,
        entity_id: str,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        include_history: bool = True,
    ) -> BlockingSubscription:
        """Blocking :meth:`AsyncGateway.subscribe_entity`; iterate or call ``get(timeout)``."""
        sub = self._call(
            self._async.subscribe_entity,
            entity_type,
            entity_id,
            namespace=namespace,
            tenant=tenant,
            include_history=include_history,
        )
        return BlockingSubscription(self, sub)

    # ------------------------------------------------------------------ approvals

    def approve(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str,
        expires_at: int | str,
        kid: str | None = None,
        caller: Caller | None = None,
    ) -> Outcome:
        """Blocking :meth:`AsyncGateway.approve`."""
        result: Outcome = self._call(
            self._async.approve, namespace, tenant, id, sig=sig, expires_at=expires_at, kid=kid, caller=caller
        )
        return result

    def reject(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str,
        expires_at: int | str,
        kid: str | None = None,
        caller: Caller | None = None,
    ) -> Approval:
        """Blocking :meth:`AsyncGateway.reject`."""
        result: Approval = self._call(
            self._async.reject, namespace, tenant, id, sig=sig, expires_at=expires_at, kid=kid, caller=caller
        )
        return result

    def list_approvals(self, namespace: str, tenant: str, status: str | None = None) -> list[Approval]:
        """Blocking :meth:`AsyncGateway.list_approvals`."""
        result: list[Approval] = self._call(self._async.list_approvals, namespace, tenant, status)
        return result

    def get_approval(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str | None = None,
        expires_at: int | str | None = None,
        kid: str | None = None,
    ) -> Approval | None:
        """Blocking :meth:`AsyncGateway.get_approval`."""
        result: Approval | None = self._call(
            self._async.get_approval, namespace, tenant, id, sig=sig, expires_at=expires_at, kid=kid
        )
        return result

    def approval_links(self, namespace: str, tenant: str, id: str) -> ApprovalLinks:
        """Blocking :meth:`AsyncGateway.approval_links`."""
        result: ApprovalLinks = self._call(self._async.approval_links, namespace, tenant, id)
        return result

    # ------------------------------------------------------------------ scheduled and recurring actions

    def list_scheduled(self, namespace: str, tenant: str) -> list[ScheduledAction]:
        """Blocking :meth:`AsyncGateway.list_scheduled`."""
        result: list[ScheduledAction] = self._call(self._async.list_scheduled, namespace, tenant)
        return result

    def get_scheduled(self, namespace: str, tenant: str, scheduled_id: str) -> ScheduledAction | None:
        """Blocking :meth:`AsyncGateway.get_scheduled`."""
        result: ScheduledAction | None = self._call(self._async.get_scheduled, namespace, tenant, scheduled_id)
        return result

    def cancel_scheduled(self, namespace: str, tenant: str, scheduled_id: str) -> bool:
        """Blocking :meth:`AsyncGateway.cancel_scheduled`."""
        result: bool = self._call(self._async.cancel_scheduled, namespace, tenant, scheduled_id)
        return result

    def create_recurring(
        self,
        namespace: str,
        tenant: str,
        *,
        provider: str,
        action_type: str,
        cron_expr: str,
        payload: Any = None,
        metadata: Mapping[str, str] | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        description: str | None = None,
        dedup_key: str | None = None,
        ends_at: datetime | str | None = None,
        max_executions: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> RecurringAction:
        """Blocking :meth:`AsyncGateway.create_recurring`."""
        result: RecurringAction = self._call(
            self._async.create_recurring, namespace, tenant, provider=provider, action_type=action_type,
            cron_expr=cron_expr, payload=payload, metadata=metadata, timezone=timezone, name=name,
            description=description, dedup_key=dedup_key, ends_at=ends_at, max_executions=max_executions,
            labels=labels,
        )
        return result

    def get_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction | None:
        """Blocking :meth:`AsyncGateway.get_recurring`."""
        result: RecurringAction | None = self._call(self._async.get_recurring, namespace, tenant, recurring_id)
        return result

    def list_recurring(
        self, namespace: str, tenant: str, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RecurringAction]:
        """Blocking :meth:`AsyncGateway.list_recurring`."""
        result: list[RecurringAction] = self._call(
            self._async.list_recurring, namespace, tenant, status=status, limit=limit, offset=offset
        )
        return result

    def update_recurring(
        self,
        namespace: str,
        tenant: str,
        recurring_id: str,
        *,
        payload: Any = None,
        metadata: Mapping[str, str] | None = None,
        cron_expr: str | None = None,
        timezone: str | None = None,
        ends_at: datetime | str | None = None,
        max_executions: int | None = None,
        description: str | None = None,
        name: str | None = None,
        dedup_key: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> RecurringAction:
        """Blocking :meth:`AsyncGateway.update_recurring`."""
        result: RecurringAction = self._call(
            self._async.update_recurring, namespace, tenant, recurring_id, payload=payload, metadata=metadata,
            cron_expr=cron_expr, timezone=timezone, ends_at=ends_at, max_executions=max_executions,
            description=description, name=name, dedup_key=dedup_key, labels=labels,
        )
        return result

    def pause_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        """Blocking :meth:`AsyncGateway.pause_recurring`."""
        result: RecurringAction = self._call(self._async.pause_recurring, namespace, tenant, recurring_id)
        return result

    def resume_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        """Blocking :meth:`AsyncGateway.resume_recurring`."""
        result: RecurringAction = self._call(self._async.resume_recurring, namespace, tenant, recurring_id)
        return result

    def delete_recurring(self, namespace: str, tenant: str, recurring_id: str) -> bool:
        """Blocking :meth:`AsyncGateway.delete_recurring`."""
        result: bool = self._call(self._async.delete_recurring, namespace, tenant, recurring_id)
        return result

    # ------------------------------------------------------------------ groups and state-machine events

    def list_groups(
        self,
        namespace: str | None = None,
        tenant: str | None = None,
        *,
        state: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Blocking :meth:`AsyncGateway.list_groups`."""
        result: list[dict[str, Any]] = self._call(
            self._async.list_groups, namespace, tenant, state=state, limit=limit
        )
        return result

    def get_group(
        self, group: str, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any] | None:
        """Blocking :meth:`AsyncGateway.get_group`."""
        result: dict[str, Any] | None = self._call(self._async.get_group, group, namespace, tenant)
        return result

    def flush_group(
        self, group: str, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Blocking :meth:`AsyncGateway.flush_group`."""
        result: dict[str, Any] = self._call(self._async.flush_group, group, namespace, tenant)
        return result

    def list_events(
        self, namespace: str, tenant: str, *, status: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Blocking :meth:`AsyncGateway.list_events`."""
        result: list[dict[str, Any]] = self._call(
            self._async.list_events, namespace, tenant, status=status, limit=limit
        )
        return result

    def get_event(self, namespace: str, tenant: str, fingerprint: str) -> dict[str, Any] | None:
        """Blocking :meth:`AsyncGateway.get_event`."""
        result: dict[str, Any] | None = self._call(self._async.get_event, namespace, tenant, fingerprint)
        return result

    def transition_event(
        self, namespace: str, tenant: str, fingerprint: str, to_state: str, *, force: bool = False
    ) -> StateChanged:
        """Blocking :meth:`AsyncGateway.transition_event`."""
        result: StateChanged = self._call(
            self._async.transition_event, namespace, tenant, fingerprint, to_state, force=force
        )
        return result


class BlockingSubscription:
    """Blocking view of a subscription: ``for event in sub`` or ``sub.get(timeout=...)``."""

    def __init__(self, gateway: Gateway, inner: Any) -> None:
        self._gateway = gateway
        self._inner = inner

    def get(self, timeout: float | None = None) -> StreamEvent | None:
        """The next event, waiting up to ``timeout`` seconds (``None`` = forever);
        ``None`` on timeout and once the subscription has ended or was closed."""
        import anyio

        async def next_event() -> StreamEvent | None:
            with anyio.move_on_after(timeout):
                try:
                    event: StreamEvent = await self._inner.__anext__()
                except StopAsyncIteration:
                    return None
                return event
            return None

        result: StreamEvent | None = self._gateway._call(next_event)
        return result

    def __iter__(self) -> Iterator[StreamEvent]:
        while True:
            event = self.get()
            if event is None:  # the subscription ended (or was closed)
                return
            yield event

    def close(self) -> None:
        self._gateway._call(self._inner.aclose)
