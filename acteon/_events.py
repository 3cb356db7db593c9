"""Outcome and lifecycle events for ``gw.events()`` subscribers.

Publishing never blocks dispatch: each subscriber has a bounded buffer, and a
subscriber that falls behind loses the oldest events and receives one
``lagged`` marker saying how many it missed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from acteon._audit_builder import fast_uuid7
from acteon._exceptions import ActeonError
from acteon._timefmt import coerce_datetime, format_rfc3339

# Event types (workflows.md §10.1). Publishers pass these as ``StreamEvent.type``.
ACTION_DISPATCHED = "action_dispatched"
GROUP_FLUSHED = "group_flushed"
GROUP_EVENT_ADDED = "group_event_added"
GROUP_RESOLVED = "group_resolved"
TIMEOUT = "timeout"
ACTION_STATUS_CHANGED = "action_status_changed"
CHAIN_ADVANCED = "chain_advanced"
CHAIN_STEP_COMPLETED = "chain_step_completed"
CHAIN_COMPLETED = "chain_completed"
APPROVAL_REQUIRED = "approval_required"
APPROVAL_RESOLVED = "approval_resolved"
APPROVAL_EXPIRED = "approval_expired"  # acteon addition (DECISIONS D15)
SCHEDULED_ACTION_DUE = "scheduled_action_due"
LAGGED = "lagged"
SUBSCRIPTION_END = "subscription_end"
UNKNOWN = "unknown"

EVENT_TYPES: frozenset[str] = frozenset({
    ACTION_DISPATCHED, GROUP_FLUSHED, GROUP_EVENT_ADDED, GROUP_RESOLVED, TIMEOUT,
    ACTION_STATUS_CHANGED, CHAIN_ADVANCED, CHAIN_STEP_COMPLETED, CHAIN_COMPLETED,
    APPROVAL_REQUIRED, APPROVAL_RESOLVED, APPROVAL_EXPIRED, SCHEDULED_ACTION_DUE,
    "task_transitioned", "task_history_appended", "task_artifact_updated",
    # acteon additions published by its features
    "chain_paused", "chain_resumed", "scheduled_action_failed", "recurring_action_failed",
    "rules_reloaded", "rules_reload_failed", "circuit_state_changed",
})
"""Types a parsed event keeps; anything else reads back as ``unknown`` (§10.1)."""

# The ``chain_id`` / ``group_id`` filters only ever pass events of their own entity
# (§10.2), whatever other events carry in their data.
_CHAIN_PREFIX = "chain_"
_GROUP_PREFIX = "group_"
_ENVELOPE = frozenset({"id", "timestamp", "type", "namespace", "tenant", "action_type", "action_id"})


def uuid7() -> str:
    """A time-ordered UUID (version 7): 48-bit ms timestamp, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


@dataclass(slots=True)
class StreamEvent:
    """One event. ``data`` holds the type-specific fields (``outcome``, ``provider``, ...)."""

    type: str
    timestamp: datetime
    namespace: str = ""
    tenant: str = ""
    action_type: str | None = None
    action_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """UUIDv7; when not given, made from ``timestamp`` (the gateway clock's time), so
    event ids sort like the audit record ids they sit next to."""
    outcome_kind: str | None = None
    group_id: str | None = None
    chain_id: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = fast_uuid7(self.timestamp)
        # Publishers may give the entity ids only as variant fields; the filters
        # read the attributes, so take them from the data when not passed.
        if self.group_id is None and isinstance(self.data.get("group_id"), str):
            self.group_id = self.data["group_id"]
        if self.chain_id is None and isinstance(self.data.get("chain_id"), str):
            self.chain_id = self.data["chain_id"]

    @property
    def is_lagged(self) -> bool:
        """The marker a slow subscriber gets instead of the events it missed."""
        return self.type == LAGGED

    def to_dict(self) -> dict[str, Any]:
        """Upstream's flattened, type-tagged JSON form."""
        out: dict[str, Any] = {
            "id": self.id,
            "timestamp": format_rfc3339(self.timestamp),
            "type": self.type,
        }
        out.update(self.data)
        out["namespace"] = self.namespace
        out["tenant"] = self.tenant
        if self.action_type is not None:
            out["action_type"] = self.action_type
        if self.action_id is not None:
            out["action_id"] = self.action_id
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamEvent:
        """Parse :meth:`to_dict` output; an unknown ``type`` becomes ``unknown`` (§10.1)."""
        if not isinstance(data, dict) or "type" not in data:
            raise ValueError("a stream event is a JSON object with a 'type'")
        kind = str(data["type"])
        if kind not in EVENT_TYPES and kind not in (LAGGED, SUBSCRIPTION_END):
            kind = UNKNOWN
        fields = {k: v for k, v in data.items() if k not in _ENVELOPE}
        outcome_kind = None
        if kind == ACTION_DISPATCHED:
            from acteon.outcomes import Outcome

            try:
                outcome_kind = Outcome.from_wire(fields.get("outcome")).kind
            except ActeonError:
                outcome_kind = None
        stamp = data.get("timestamp")
        return cls(
            kind,
            coerce_datetime(stamp) if stamp is not None else datetime.now(UTC),
            str(data.get("namespace", "")),
            str(data.get("tenant", "")),
            data.get("action_type"),
            data.get("action_id"),
            fields,
            id=str(data["id"]) if data.get("id") is not None else uuid7(),
            outcome_kind=outcome_kind,
        )


@dataclass(slots=True)
class EventFilter:
    """Which events a subscriber wants; ``None`` fields match everything."""

    namespace: str | None = None
    tenant: str | None = None
    action_type: str | None = None
    outcome: str | None = None
    event_type: str | None = None
    action_id: str | None = None
    group_id: str | None = None
    chain_id: str | None = None

    def matches(self, event: StreamEvent) -> bool:
        """AND of the set fields (workflows.md §10.2). ``outcome`` passes only
        ``action_dispatched`` events; ``chain_id`` / ``group_id`` only that chain's
        ``chain_*`` / that group's ``group_*`` events."""
        if event.type == LAGGED:
            return True
        return (
            (self.namespace is None or event.namespace == self.namespace)
            and (self.tenant is None or event.tenant == self.tenant)
            and (self.action_type is None or event.action_type == self.action_type)
            and (self.outcome is None
                 or (event.type == ACTION_DISPATCHED and event.outcome_kind == self.outcome))
            and (self.event_type is None or event.type == self.event_type)
            and (self.action_id is None or event.action_id == self.action_id)
            and (self.group_id is None
                 or (event.type.startswith(_GROUP_PREFIX) and event.group_id == self.group_id))
            and (self.chain_id is None
                 or (event.type.startswith(_CHAIN_PREFIX) and event.chain_id == self.chain_id))
        )


class _Subscriber:
    __slots__ = ("buffer", "capacity", "filter", "missed", "wakeup")

    def __init__(self, flt: EventFilter, capacity: int) -> None:
        self.filter = flt
        self.capacity = capacity
        self.buffer: deque[StreamEvent] = deque()
        self.missed = 0
        self.wakeup = anyio.Event()

    def offer(self, event: StreamEvent) -> None:
        if not self.filter.matches(event):
            return
        if len(self.buffer) >= self.capacity:
            self.buffer.popleft()
            self.missed += 1
        self.buffer.append(event)
        self.wakeup.set()


class Subscription:
    """An ``async for`` stream of events. Registered as soon as it is created, so
    events published after ``gw.events()`` returns are never missed; close it
    (``aclose()`` or ``async with``) to unsubscribe."""

    def __init__(self, bus: EventBus, flt: EventFilter) -> None:
        self._bus = bus
        self._sub = _Subscriber(flt, bus.buffer_size)
        bus._subscribers.append(self._sub)
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEvent:
        sub = self._sub
        while True:
            if self._closed:
                raise StopAsyncIteration
            if sub.missed:
                missed, sub.missed = sub.missed, 0
                return StreamEvent(LAGGED, self._bus.now(), data={"skipped": missed})
            if sub.buffer:
                return sub.buffer.popleft()
            sub.wakeup = anyio.Event()
            await sub.wakeup.wait()

    def get_nowait(self) -> StreamEvent | None:
        """The next buffered event, or ``None`` when nothing is waiting."""
        sub = self._sub
        if sub.missed:
            missed, sub.missed = sub.missed, 0
            return StreamEvent(LAGGED, self._bus.now(), data={"skipped": missed})
        return sub.buffer.popleft() if sub.buffer else None

    def close(self) -> None:
        """Unsubscribe now (no await needed); a waiting ``async for`` ends."""
        if not self._closed:
            self._closed = True
            self._sub.wakeup.set()
            if self._sub in self._bus._subscribers:
                self._bus._subscribers.remove(self._sub)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class EventBus:
    """Fan-out of events to subscribers. ``publish`` is synchronous and O(subscribers)."""

    def __init__(self, buffer_size: int = 1024, now: Callable[[], datetime] | None = None) -> None:
        self.buffer_size = buffer_size
        self._subscribers: list[_Subscriber] = []
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: StreamEvent) -> None:
        for sub in self._subscribers:
            sub.offer(event)

    def subscribe(self, flt: EventFilter | None = None) -> Subscription:
        return Subscription(self, flt or EventFilter())
