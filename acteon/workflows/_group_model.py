"""The stored event group and its Alertmanager-style timing (workflows.md §6, peers.md §12).

Pure data and arithmetic, no I/O: :class:`EventGroup` is the JSON record kept at
``{ns}:{tenant}:group:{group_key}``, :meth:`EventGroup.add` is what one grouped
action does to it and :func:`plan_flush` is what a due tick (or a manual flush)
does. ``grouping.py`` wraps both in compare-and-swap loops and claims.

Timing, per group (``W`` = group_wait, ``I`` = group_interval, ``R`` = repeat_interval):

* the first event arms the first flush at ``now + W`` (at once when the action's
  ``starts_at + W`` already passed); later arrivals never move it;
* after a flush the group keeps a fixed cadence of ticks every ``I`` from that
  flush; events arriving after it wait for the next tick, not for ``W``;
* at a tick the group is sent only if there is something new: events not yet
  notified, or events that resolved since; a group whose events all fired and
  resolved before its first tick sends nothing;
* without ``R`` (ephemeral group) sent events are done and dropped; the group
  lives one more tick to batch stragglers and is then removed;
* with ``R`` (persistent group) firing events are kept and re-sent once ``R``
  has passed since the last notification -- at a tick, so ``R`` rounds up to a
  multiple of ``I`` -- and the group is evicted after three idle re-sends;
* ``max_group_size`` keeps at most that many events (the oldest go first) and
  brings the flush forward to now once that many un-notified events wait
  (an acteon extension).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from acteon._action import Action
from acteon._timefmt import format_rfc3339, parse_rfc3339

MAX_IDLE_FLUSHES = 3
"""A persistent group is evicted after this many re-sends with nothing new (as upstream)."""

RESOLVED_STATUSES = frozenset({"resolved"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RETENTION_SECONDS = 7 * 86400
"""Records outlive their next due time by this much, so abandoned keys expire on their own."""


def to_ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _opt_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _time(value: Any, default: datetime) -> datetime:
    parsed = _opt_time(value)
    return default if parsed is None else parsed


def _int(value: Any, default: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return max(int(value), minimum)


@dataclass(slots=True)
class Timers:
    """The timing parameters of a ``group`` verdict, with the upstream defaults."""

    group_wait_seconds: int = 30
    group_interval_seconds: int = 300
    repeat_interval_seconds: int | None = None
    max_group_size: int = 100

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Timers:
        repeat = params.get("repeat_interval_seconds")
        return cls(
            _int(params.get("group_wait_seconds"), 30),
            # A zero interval would make the tick cadence meaningless; one second is the floor.
            _int(params.get("group_interval_seconds"), 300, 1),
            None if repeat is None else _int(repeat, 0),
            _int(params.get("max_group_size"), 100, 1),
        )


@dataclass(slots=True)
class GroupEvent:
    """One grouped action: ``{action_id, fingerprint, status, payload, received_at}`` (+ acteon fields)."""

    action_id: str
    fingerprint: str
    status: str | None
    payload: Any
    received_at: datetime
    ends_at: datetime | None = None
    explicit_fingerprint: bool = False

    @property
    def identity(self) -> str:
        """Events with the action's own fingerprint update each other (like an alert
        re-sent with the same labels); other events are distinct per action id."""
        return self.fingerprint if self.explicit_fingerprint else self.action_id

    def resolved_at(self, when: datetime) -> bool:
        if self.status is not None and self.status.lower() in RESOLVED_STATUSES:
            return True
        return self.ends_at is not None and self.ends_at <= when

    @classmethod
    def from_action(cls, action: Action, fingerprint: str, now: datetime) -> GroupEvent:
        return cls(action.id, fingerprint, action.status, action.payload, now, action.ends_at,
                   action.fingerprint is not None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action_id": self.action_id,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "payload": self.payload,
            "received_at": format_rfc3339(self.received_at),
        }
        if self.ends_at is not None:
            out["ends_at"] = format_rfc3339(self.ends_at)
        if self.explicit_fingerprint:
            out["explicit_fingerprint"] = True
        return out

    @staticmethod
    def identity_of(raw: dict[str, Any]) -> str:
        """:attr:`identity` of a stored event, without parsing the rest of it."""
        return str(raw.get("fingerprint") if raw.get("explicit_fingerprint") is True else raw.get("action_id"))

    @classmethod
    def from_dict(cls, data: Any, default_time: datetime) -> GroupEvent | None:
        if not isinstance(data, dict):
            return None
        status = data.get("status")
        return cls(
            str(data.get("action_id", "")),
            str(data.get("fingerprint", "")),
            status if isinstance(status, str) else None,
            data.get("payload"),
            _time(data.get("received_at"), default_time),
            _opt_time(data.get("ends_at")),
            data.get("explicit_fingerprint") is True,
        )


@dataclass(slots=True)
class EventGroup:
    """The record at ``group:{group_key}``: upstream's EventGroup fields plus acteon's own.

    ``state``: ``pending`` (something waits for the next tick), ``notified``
    (everything was sent) or ``resolved`` (a short-lived tombstone left when a
    group ends, so a concurrent writer's compare-and-swap fails cleanly).
    """

    group_id: str
    group_key: str
    namespace: str
    tenant: str
    labels: dict[str, str]
    events: list[dict[str, Any]]
    """Stored events (``GroupEvent.to_dict()`` form), kept as parsed JSON: adding one
    event must not re-parse every other one, so they are decoded only to flush."""
    notify_at: datetime
    created_at: datetime
    updated_at: datetime
    state: str = "pending"
    last_notified_at: datetime | None = None
    trace_context: dict[str, str] = field(default_factory=dict)
    timers: Timers = field(default_factory=Timers)
    idle_flushes: int = 0
    notify_provider: str = ""
    rule: str | None = None
    unsent: int = 0
    tick_anchor: datetime | None = None
    notified_firing: list[str] = field(default_factory=list)
    flushes: int = 0

    # ------------------------------------------------------------------ creation and arrival

    @classmethod
    def new(
        cls, action: Action, key: str, labels: dict[str, str], timers: Timers, provider: str,
        rule: str | None, now: datetime,
    ) -> EventGroup:
        notify_at = now + timedelta(seconds=timers.group_wait_seconds)
        if action.starts_at is not None and action.starts_at + timedelta(seconds=timers.group_wait_seconds) < now:
            notify_at = now  # the event already waited out group_wait before it got here
        return cls(
            group_id=str(uuid.uuid4()), group_key=key, namespace=action.namespace, tenant=action.tenant,
            labels=dict(labels), events=[], notify_at=notify_at, created_at=now, updated_at=now,
            trace_context=dict(action.trace_context), timers=timers, notify_provider=provider, rule=rule,
        )

    @property
    def persistent(self) -> bool:
        return self.timers.repeat_interval_seconds is not None

    @property
    def interval_ms(self) -> int:
        return max(self.timers.group_interval_seconds, 1) * 1000

    @property
    def repeat_ms(self) -> int:
        """``repeat_interval`` rounded up to whole intervals: repeats happen at ticks."""
        repeat = (self.timers.repeat_interval_seconds or 0) * 1000
        return max(math.ceil(repeat / self.interval_ms), 1) * self.interval_ms

    def next_tick_after(self, now: datetime) -> datetime:
        """The first tick of the group's cadence at or after ``now`` (never the anchor itself)."""
        if self.tick_anchor is None:
            return now
        anchor, step = to_ms(self.tick_anchor), self.interval_ms
        k = max(1, math.ceil((to_ms(now) - anchor) / step))
        return from_ms(anchor + k * step)

    def add(self, event: GroupEvent, timers: Timers, provider: str | None, rule: str | None,
            now: datetime) -> bool:
        """Put ``event`` in the group; ``False`` when it is already there (a retried dispatch)."""
        if any(e.get("action_id") == event.action_id for e in self.events):
            return False
        self.timers = timers
        if provider:
            self.notify_provider = provider
        self.rule = rule
        replaced = False
        raw = event.to_dict()
        if event.explicit_fingerprint:
            for i, existing in enumerate(self.events):
                if GroupEvent.identity_of(existing) == event.identity:
                    self.events[i] = raw
                    replaced = True
                    break
        if not replaced:
            self.events.append(raw)
            while len(self.events) > timers.max_group_size:
                self.events.pop(0)  # at capacity the oldest event gives way
        self.unsent = min(self.unsent + 1, len(self.events))
        if self.state != "pending":
            self.state = "pending"
            self.idle_flushes = 0
            self.notify_at = min(self.notify_at, self.next_tick_after(now))
        if self.unsent >= timers.max_group_size:
            self.notify_at = min(self.notify_at, now)
        self.updated_at = now
        return True

    # ------------------------------------------------------------------ JSON

    def record_ttl(self) -> float:
        t = self.timers
        horizon = t.group_wait_seconds + t.group_interval_seconds + 4 * (t.repeat_interval_seconds or 0)
        return float(_RETENTION_SECONDS + horizon)

    def summary(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "group_key": self.group_key,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "event_count": len(self.events),
            "state": self.state,
            "notify_at": format_rfc3339(self.notify_at),
            "created_at": format_rfc3339(self.created_at),
        }

    def to_dict(self) -> dict[str, Any]:
        t = self.timers
        return {
            "group_id": self.group_id,
            "group_key": self.group_key,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "labels": self.labels,
            "events": self.events,
            "notify_at": format_rfc3339(self.notify_at),
            "last_notified_at": None if self.last_notified_at is None else format_rfc3339(self.last_notified_at),
            "state": self.state,
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
            "trace_context": self.trace_context,
            "group_wait_seconds": t.group_wait_seconds,
            "group_interval_seconds": t.group_interval_seconds,
            "repeat_interval_seconds": t.repeat_interval_seconds,
            "max_group_size": t.max_group_size,
            "idle_flushes": self.idle_flushes,
            "size": len(self.events),
            "notify_provider": self.notify_provider,
            "rule": self.rule,
            "unsent": self.unsent,
            "tick_anchor": None if self.tick_anchor is None else format_rfc3339(self.tick_anchor),
            "notified_firing": self.notified_firing,
            "flushes": self.flushes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, namespace: str, tenant: str, key: str, now: datetime) -> EventGroup | None:
        """Parse a stored record leniently (missing fields take defaults, as upstream's
        legacy records do); ``None`` when the value is not a JSON object."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        created = _time(data.get("created_at"), now)
        raw_events = data.get("events")
        events = [e for e in raw_events if isinstance(e, dict)] if isinstance(raw_events, list) else []
        labels = data.get("labels")
        trace = data.get("trace_context")
        state = data.get("state")
        rule = data.get("rule")
        return cls(
            group_id=str(data.get("group_id") or uuid.uuid4()),
            group_key=str(data.get("group_key") or key),
            namespace=str(data.get("namespace") or namespace),
            tenant=str(data.get("tenant") or tenant),
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            events=events,
            notify_at=_time(data.get("notify_at"), now),
            created_at=created,
            updated_at=_time(data.get("updated_at"), created),
            state=state if state in ("pending", "notified", "resolved") else "pending",
            last_notified_at=_opt_time(data.get("last_notified_at")),
            trace_context={str(k): str(v) for k, v in trace.items()} if isinstance(trace, dict) else {},
            timers=Timers.from_params(data),
            idle_flushes=_int(data.get("idle_flushes"), 0),
            notify_provider=str(data.get("notify_provider") or ""),
            rule=rule if isinstance(rule, str) else None,
            unsent=_int(data.get("unsent"), len(events)),
            tick_anchor=_opt_time(data.get("tick_anchor")),
            notified_firing=[str(x) for x in data.get("notified_firing") or []],
            flushes=_int(data.get("flushes"), 0),
        )


def tombstone(group: EventGroup, now: datetime) -> str:
    """The short-lived value that replaces a finished group."""
    return json.dumps({
        "group_id": group.group_id, "group_key": group.group_key, "namespace": group.namespace,
        "tenant": group.tenant, "state": "resolved", "events": [], "notify_at": format_rfc3339(now),
        "created_at": format_rfc3339(group.created_at), "updated_at": format_rfc3339(now),
    }, separators=(",", ":"))


TOMBSTONE_TTL = 3600.0


@dataclass(slots=True)
class FlushPlan:
    """What one tick (or a manual flush) does to a group."""

    send: bool
    sent_events: list[GroupEvent]
    resolved: set[str]
    tick: datetime
    group: EventGroup
    close: bool


def plan_flush(group: EventGroup, now: datetime, *, manual: bool = False) -> FlushPlan:
    """Decide whether the group is sent at this tick and what it looks like afterwards.

    Mutates and returns ``group`` (inside the plan) as it should be stored, unless
    ``close`` says the group ends here.
    """
    g = group
    events = [e for e in (GroupEvent.from_dict(raw, g.created_at) for raw in g.events) if e is not None]
    if manual:
        tick = now
    else:
        # Stay on the cadence even when the job runs late (or after downtime):
        # the tick is the last cadence point not after now.
        due = to_ms(g.notify_at)
        late = max(to_ms(now) - due, 0)
        tick = from_ms(due + (late // g.interval_ms) * g.interval_ms)
    resolved = {e.identity for e in events if e.resolved_at(tick)}
    firing = {e.identity for e in events} - resolved
    previous = set(g.notified_firing)
    repeat = False
    if manual:
        send = bool(events)
    elif g.last_notified_at is None:
        send = bool(firing)  # fired and resolved before the first tick: nothing to say
    elif not firing <= previous or resolved:
        send = True
    elif g.persistent and firing and g.tick_anchor is not None and to_ms(tick) - to_ms(g.tick_anchor) >= g.repeat_ms:
        send = repeat = True
    else:
        send = False

    sent = events if send else []
    # Resolved events have been reported (or were never worth reporting); sent
    # events of an ephemeral group are delivered. Either way they leave the group.
    remaining = [raw for raw in g.events if GroupEvent.identity_of(raw) not in resolved]
    if send and not g.persistent:
        remaining = []
    if send:
        g.last_notified_at = now
        g.tick_anchor = tick
        g.flushes += 1
        g.idle_flushes = g.idle_flushes + 1 if repeat else 0
        g.notified_firing = sorted(firing) if g.persistent else []
    g.events = remaining
    g.unsent = 0
    g.state = "notified"
    g.updated_at = now
    if g.persistent:
        close = not remaining or g.idle_flushes >= MAX_IDLE_FLUSHES
        anchor = g.tick_anchor or tick
        g.notify_at = from_ms(to_ms(anchor) + g.repeat_ms)
    else:
        # Keep the group one more interval to batch stragglers; end it at a tick
        # that had nothing to send.
        close = not send and not remaining
        g.notify_at = from_ms(to_ms(tick) + g.interval_ms)
    return FlushPlan(send, sent, resolved, tick, g, close)
