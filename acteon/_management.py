"""Management methods of the gateway: rules, providers, audit, DLQ, events, health.

Kept apart from the dispatch pipeline so each file holds one idea; mixed into
``AsyncGateway``, whose attributes these methods use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acteon._action import Action, coerce_action
from acteon._dlq import DeadLetter
from acteon._events import EventFilter, Subscription
from acteon._exceptions import ConfigurationError, UsageError
from acteon._metrics import GatewayMetrics
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord
from acteon.providers._base import Provider
from acteon.rules import EvaluationTrace, MockState, RuleSet, load_rules, load_rules_dir
from acteon.rules._context import Lookup

if TYPE_CHECKING:
    from acteon._clock import Clock
    from acteon._dlq import DeadLetterQueue
    from acteon._events import EventBus
    from acteon.audit._base import AuditStore
    from acteon.state._base import StateStore


class ManagementMixin:
    """Everything on the gateway that is not ``dispatch``."""

    _metrics: GatewayMetrics
    _rules: RuleSet
    _rules_source: Any
    _state: StateStore
    _audit: AuditStore | None
    _providers: dict[str, Provider]
    _clock: Clock
    _env: dict[str, str]
    _rule_lookups: dict[str, Lookup]
    _tz: str | None
    _dlq: DeadLetterQueue | None
    _events: EventBus

    def _init_management(self) -> None:
        self._metrics = GatewayMetrics()

    @property
    def metrics(self) -> GatewayMetrics:
        """Monotonic counters; ``metrics.snapshot()`` copies them."""
        return self._metrics

    # ------------------------------------------------------------------ rules

    @property
    def rules(self) -> RuleSet:
        """The active rule set (sorted by priority)."""
        return self._rules

    def reload_rules(self, rules: RuleSet | str | os.PathLike[str] | None = None) -> int:
        """Replace the rule set atomically; returns the number of rules.

        ``rules`` may be a ``RuleSet``, a file, a directory or YAML text; ``None``
        reloads from the directory or file the gateway was configured with. A
        load error raises ``RuleLoadError`` and keeps the current set (D10).
        """
        if rules is None:
            source = getattr(self, "_rules_source", None)
            if source is None:
                raise UsageError("reload_rules() without arguments needs a configured rules path")
            if not isinstance(source, str | os.PathLike):
                # `[rules] files = [...]` (with or without a directory): reload them all, in order.
                from acteon.rules._sources import load_source

                new_set = load_source(source)
                self._rules = new_set
                return len(new_set)
            rules = source
        if isinstance(rules, RuleSet):
            new = rules
        else:
            path = os.fspath(rules)
            if os.path.isdir(path):
                new = load_rules_dir(path)
            elif os.path.exists(path):
                new = load_rules(path)
            else:
                new = load_rules(str(rules))
        self._rules = new
        return len(new)

    def enable_rule(self, name: str) -> bool:
        """Enable the first rule with this name; ``False`` if there is none."""
        return self._rules.enable_rule(name)

    def disable_rule(self, name: str) -> bool:
        """Disable the first rule with this name; ``False`` if there is none."""
        return self._rules.disable_rule(name)

    async def evaluate_rules(
        self,
        action: Action | Mapping[str, Any],
        *,
        include_disabled: bool = False,
        evaluate_all: bool = False,
        evaluate_at: datetime | None = None,
        mock_state: Mapping[str, str] | None = None,
    ) -> EvaluationTrace:
        """Rule playground: the evaluation trace (rules.md §10). Never writes or executes."""
        action = coerce_action(action)
        state: Any = self._state
        if mock_state:
            state = MockState(mock_state, self._state)
        return await self._rules.aevaluate_with_trace(
            action,
            include_disabled=include_disabled,
            evaluate_all=evaluate_all,
            now=evaluate_at or self._clock.now(),
            state=state,
            env=self._env,
            timezone=self._tz,
            lookups=self._rule_lookups,
        )

    # ------------------------------------------------------------------ providers

    @property
    def providers(self) -> dict[str, Provider]:
        """Registered providers by name (a copy)."""
        return dict(self._providers)

    def register_provider(self, provider: Provider) -> None:
        """Add or replace a provider."""
        if not provider.name:
            raise ConfigurationError(f"provider {provider!r} has no name")
        self._providers[provider.name] = provider

    # provider_health() lives with the execution statistics in acteon.resilience._api.

    # ------------------------------------------------------------------ audit

    async def audit_query(self, query: AuditQuery | Mapping[str, Any] | None = None) -> AuditPage:
        """Query the audit trail (filters, sorting and cursor pagination of state-audit.md B2-B4)."""
        store = self._require_audit()
        if query is None:
            query = AuditQuery()
        elif not isinstance(query, AuditQuery):
            query = AuditQuery.from_params(dict(query))
        return await store.query(query)

    async def audit_get(self, action_id: str) -> AuditRecord | None:
        """The most recent audit record of an action."""
        return await self._require_audit().get_by_action_id(action_id)

    def _require_audit(self) -> AuditStore:
        if self._audit is None:
            raise UsageError("audit is not enabled on this gateway")
        return self._audit

    # ------------------------------------------------------------------ dead-letter queue

    def dlq_enabled(self) -> bool:
        return self._dlq is not None

    def dlq_list(self) -> list[DeadLetter]:
        """Dead letters in arrival order (empty when the DLQ is disabled)."""
        return [] if self._dlq is None else self._dlq.list()

    def dlq_drain(self) -> list[DeadLetter]:
        """Remove and return every dead letter."""
        return [] if self._dlq is None else self._dlq.drain()

    # ------------------------------------------------------------------ events

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
    ) -> Subscription:
        """Subscribe to outcome and lifecycle events: ``async for event in gw.events(...)``.

        Keyword filters are AND-combined (workflows.md §10.2; ``filter`` replaces
        them all). The subscription starts at once; close it with ``aclose()`` or
        ``async with``.
        """
        if filter is None:
            filter = EventFilter(
                namespace=namespace, tenant=tenant, action_type=action_type, outcome=outcome,
                event_type=event_type, action_id=action_id, group_id=group_id, chain_id=chain_id,
            )
        return self._events.subscribe(filter)
