"""Entity subscriptions: one action, group or chain, history first (workflows.md §10.3).

``await gw.subscribe_entity("chain", chain_id, namespace=..., tenant=...)``
returns an async iterator that yields

1. catch-up events describing what already happened (``include_history=True``):
   for an action, its latest audit record rebuilt as ``action_dispatched``; for
   chains and groups, whatever the chain/group feature registered in
   ``gateway._entity_catchup[kind]`` reports;
2. then the live events of that entity (the ``chain_id`` / ``group_id`` /
   ``action_id`` filter of :meth:`events`);
3. for chains and groups, a final ``subscription_end`` event once the entity
   is finished -- right after the catch-up when it already was -- after which
   the iteration stops. Action subscriptions stay open until closed.

The live subscription is registered before the history is read, so nothing
that happens in between is lost (an event may then appear in both parts).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from acteon._events import (
    ACTION_DISPATCHED,
    CHAIN_COMPLETED,
    GROUP_RESOLVED,
    SUBSCRIPTION_END,
    EventBus,
    EventFilter,
    StreamEvent,
    Subscription,
)
from acteon._exceptions import ActeonError, EntityNotFoundError, UsageError
from acteon.audit._model import AuditRecord
from acteon.outcomes import Outcome, sanitize_outcome_wire

if TYPE_CHECKING:
    from acteon._clock import Clock
    from acteon.audit._base import AuditStore

ENTITY_TYPES = ("action", "chain", "group")

EntityCatchup = Callable[[str, str, str], Awaitable["list[StreamEvent] | None"]]
"""``async fn(namespace, tenant, entity_id) -> events | None`` registered by a feature
in ``gateway._entity_catchup["chain"|"group"]``; ``None`` means no such entity."""

_ID_CHARS = re.compile(r"^[\w.\-]+$")  # \w: Unicode letters and digits and "_"
_PLACEHOLDER = "[redacted]"
_UNREBUILDABLE = frozenset({"dry_run", "quota_exceeded", "recurring_created"})
_EMPTY_RESPONSE: dict[str, Any] = {"body": None, "headers": {}}


def validate_entity(entity_type: str, entity_id: str, namespace: str | None, tenant: str | None) -> None:
    """The checks of §10.3, with upstream's messages."""
    if entity_type not in ENTITY_TYPES:
        raise UsageError(f"entity_type must be one of action, chain, group; got {entity_type!r}")
    if not isinstance(entity_id, str) or not 1 <= len(entity_id.encode("utf-8")) <= 256:
        raise UsageError("entity_id must be between 1 and 256 characters")
    if not _ID_CHARS.match(entity_id):
        raise UsageError("entity_id contains invalid characters (allowed: alphanumeric, dash, underscore, dot)")
    if entity_type in ("chain", "group"):
        if not namespace:
            raise UsageError("namespace query parameter is required")
        if not tenant:
            raise UsageError("tenant query parameter is required")


def outcome_wire_from_audit(record: AuditRecord) -> Any | None:
    """Rebuild the sanitised outcome of an audit record, or ``None`` when its tag cannot
    be rebuilt (dry runs, quota rejections, decisions such as ``approval_rejected``)."""
    kind = record.outcome
    details = record.outcome_details if isinstance(record.outcome_details, dict) else {}
    if kind in _UNREBUILDABLE:
        return None
    if kind == "executed":
        return {"Executed": {"status": str(details.get("status", "success")).lower(), **_EMPTY_RESPONSE}}
    if kind == "rerouted":
        if "original_provider" not in details or "new_provider" not in details:
            return None
        return {"Rerouted": {"original_provider": details["original_provider"],
                             "new_provider": details["new_provider"],
                             "response": {"status": "success", **_EMPTY_RESPONSE}}}
    if kind == "throttled":
        if "retry_after_secs" not in details:
            return None
        return {"Throttled": {"retry_after": {"secs": int(details["retry_after_secs"]), "nanos": 0}}}
    if kind == "pending_approval":
        details = {**details, "approve_url": _PLACEHOLDER, "reject_url": _PLACEHOLDER}
    if kind == "suppressed" and "rule" not in details:
        details = {**details, "rule": record.matched_rule or ""}
    for cls in Outcome._registry.values():
        if cls.kind == kind:
            try:
                wire = {cls.tag: details} if details or cls.tag != "Deduplicated" else cls.tag
                return sanitize_outcome_wire(Outcome.from_wire(wire))
            except ActeonError:
                return None
    return None


def dispatch_event_from_audit(record: AuditRecord) -> StreamEvent | None:
    """An ``action_dispatched`` event rebuilt from an audit record (same id), or ``None``."""
    wire = outcome_wire_from_audit(record)
    if wire is None:
        return None
    return StreamEvent(
        ACTION_DISPATCHED,
        record.dispatched_at,
        record.namespace,
        record.tenant,
        record.action_type,
        record.action_id,
        {"outcome": wire, "provider": record.provider},
        id=record.id,
        outcome_kind=record.outcome,
    )


def _end_reason(entity_type: str, event: StreamEvent) -> str | None:
    """The ``subscription_end`` reason when ``event`` finishes the entity, else ``None``."""
    if entity_type == "chain" and event.type == CHAIN_COMPLETED:
        return f"chain_{event.data.get('status', 'closed')}"
    if entity_type == "group" and event.type == GROUP_RESOLVED:
        return "group_resolved"
    return None


class EntitySubscription:
    """``async for`` over one entity's events; see the module docstring."""

    def __init__(self, bus: EventBus, live: Subscription, entity_type: str, entity_id: str,
                 history: list[StreamEvent], namespace: str, tenant: str) -> None:
        self._bus = bus
        self._live = live
        self.entity_type = entity_type
        self.entity_id = entity_id
        self._pending = list(history)
        self._namespace = namespace
        self._tenant = tenant
        self._ended = False
        for event in history:
            reason = _end_reason(entity_type, event)
            if reason is not None:
                self._pending.append(self._end(reason))
                break

    def _end(self, reason: str) -> StreamEvent:
        return StreamEvent(SUBSCRIPTION_END, self._bus.now(), self._namespace, self._tenant,
                           data={"reason": reason, "entity_type": self.entity_type,
                                 "entity_id": self.entity_id})

    def __aiter__(self) -> EntitySubscription:
        return self

    def _take_pending(self) -> StreamEvent:
        event = self._pending.pop(0)
        if event.type == SUBSCRIPTION_END:
            self.close()
        return event

    def _seen_live(self, event: StreamEvent) -> StreamEvent:
        reason = _end_reason(self.entity_type, event)
        if reason is not None:
            self._pending.append(self._end(reason))
        return event

    async def __anext__(self) -> StreamEvent:
        if self._pending:
            return self._take_pending()
        if self._ended:
            raise StopAsyncIteration
        return self._seen_live(await self._live.__anext__())

    def get_nowait(self) -> StreamEvent | None:
        """The next event without waiting, or ``None`` (nothing buffered, or ended)."""
        if self._pending:
            return self._take_pending()
        if self._ended:
            return None
        event = self._live.get_nowait()
        return None if event is None else self._seen_live(event)

    def close(self) -> None:
        """Stop following the entity (events not yet read are dropped)."""
        self._ended = True
        self._pending.clear()
        self._live.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> EntitySubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SubscriptionsMixin:
    """``subscribe_entity`` on the gateway."""

    _events: EventBus
    _audit: AuditStore | None
    _clock: Clock
    _entity_catchup: dict[str, EntityCatchup]

    async def subscribe_entity(
        self,
        entity_type: str,
        entity_id: str,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        include_history: bool = True,
    ) -> EntitySubscription:
        """Follow one ``"action"``, ``"chain"`` or ``"group"``: its history, then its live events.

        Chains and groups need ``namespace`` and ``tenant``; for actions they narrow
        the live events and the audit lookup. Raises ``UsageError`` for a bad type or
        id, and ``EntityNotFoundError`` when the chain or group feature reports no
        such entity.
        """
        validate_entity(entity_type, entity_id, namespace, tenant)
        flt = EventFilter(namespace=namespace, tenant=tenant)
        if entity_type == "action":
            flt.action_id = entity_id
        elif entity_type == "chain":
            flt.chain_id = entity_id
        else:
            flt.group_id = entity_id
        live = self._events.subscribe(flt)
        try:
            history = await self._entity_history(entity_type, entity_id, namespace, tenant) \
                if include_history else []
        except BaseException:
            await live.aclose()
            raise
        if entity_type == "group":
            # A group may be named by its key; its events carry the group id, so follow that.
            ids = {e.group_id for e in history if e.group_id}
            if len(ids) == 1:
                flt.group_id = ids.pop()
        return EntitySubscription(self._events, live, entity_type, entity_id, history,
                                  namespace or "", tenant or "")

    async def _entity_history(
        self, entity_type: str, entity_id: str, namespace: str | None, tenant: str | None
    ) -> list[StreamEvent]:
        if entity_type == "action":
            if self._audit is None:
                return []
            record = await self._audit.get_by_action_id(entity_id)
            if record is None or (tenant is not None and record.tenant != tenant) or (
                namespace is not None and record.namespace != namespace
            ):
                return []
            event = dispatch_event_from_audit(record)
            return [] if event is None else [event]
        catchup = self._entity_catchup.get(entity_type)
        if catchup is None:
            return []  # the feature keeps no history here: live events only
        events = await catchup(namespace or "", tenant or "", entity_id)
        if events is None:
            raise EntityNotFoundError(f"{entity_type} '{entity_id}' not found in {namespace}/{tenant}")
        return list(events)
