"""Event grouping: the ``group`` verdict, the flush job and manual flushes (workflows.md §6).

Groups live only in the state store (DECISIONS D16), so every process sees the
same groups and a restarted gateway carries on where the old one stopped:

* ``{ns}:{t}:group:{group_key}`` holds the whole group (``_group_model.EventGroup``),
  changed only by compare-and-swap, so concurrent dispatches and flushes never
  lose an event;
* ``{ns}:{t}:pending_groups:{group_key}`` holds the next due time and is the
  group's entry in the store's timeout index (scored by that time), which is how
  the flush job finds due groups without scanning;
* ``{ns}:{t}:group_flush_claim:{group_key}:{notify_at}`` is taken with
  ``check_and_set`` before a due group is flushed, so of several processes
  ticking the same store exactly one handles each due time. The flush is
  written before the notification is sent: a crash in between loses that one
  notification rather than sending it twice.

The consolidated notification is an ordinary action (``group_notification``)
dispatched through the whole pipeline in the group's namespace and tenant, to
the provider the rule names (``notify_provider``) or else the grouped actions'
own provider. It is marked as the gateway's own (``_internal``), so a group rule
that matches it executes it instead of grouping it again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acteon._action import Action
from acteon._caller import Caller
from acteon._events import StreamEvent
from acteon._exceptions import ActeonError, GroupNotFound, GroupNotPending, StateBackendError
from acteon._timefmt import format_rfc3339
from acteon.outcomes import Grouped, Outcome
from acteon.rules import Verdict
from acteon.workflows._fields import action_fingerprint, group_key
from acteon.workflows._group_model import (
    TOMBSTONE_TTL,
    EventGroup,
    FlushPlan,
    GroupEvent,
    Timers,
    plan_flush,
    to_ms,
    tombstone,
)
from acteon.workflows._internal import internal_dispatch, internal_origin

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.grouping")

NOTIFICATION_ACTION_TYPE = "group_notification"
CLAIM_TTL = 60.0
_CAS_ATTEMPTS = 100


class GroupEngine:
    """Grouping for one gateway; kept at ``gateway._grouping``."""

    def __init__(self, gateway: AsyncGateway) -> None:
        self._gw = gateway
        self._owner = f"{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ keys

    @staticmethod
    def _key(ns: str, tenant: str, gk: str) -> str:
        return f"{ns}:{tenant}:group:{gk}"

    @staticmethod
    def _pending_key(ns: str, tenant: str, gk: str) -> str:
        return f"{ns}:{tenant}:pending_groups:{gk}"

    @staticmethod
    def _claim_key(ns: str, tenant: str, gk: str, notify_at: datetime) -> str:
        return f"{ns}:{tenant}:group_flush_claim:{gk}:{format_rfc3339(notify_at)}"

    # ------------------------------------------------------------------ verdict

    async def handle(self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None) -> Outcome:
        """Add the action to its group and answer ``Grouped``; the action is not executed."""
        gw = self._gw
        if internal_origin(action) is not None:
            # The gateway's own notification matched a group rule: deliver it.
            return await gw._execute_action(action)
        params = verdict.params
        group_by = [str(p) for p in params.get("group_by") or []]
        gk, labels = group_key(action, group_by)
        timers = Timers.from_params(params)
        provider = params.get("notify_provider") or params.get("provider")
        event = GroupEvent.from_action(action, action_fingerprint(action, group_by), now)
        group = await self._add(action, gk, labels, timers, provider, verdict.rule, event, now)
        gw._metrics.grouped += 1
        if gw._events.has_subscribers:
            gw._events.publish(StreamEvent(
                "group_event_added", now, action.namespace, action.tenant, action.action_type, action.id,
                {"group_id": group.group_id, "group_key": gk, "event_count": len(group.events)},
                group_id=group.group_id,
            ))
        return Grouped(group.group_id, len(group.events), group.notify_at)

    async def _add(
        self, action: Action, gk: str, labels: dict[str, str], timers: Timers, provider: Any,
        rule: str | None, event: GroupEvent, now: datetime,
    ) -> EventGroup:
        state = self._gw._state
        ns, tenant = action.namespace, action.tenant
        key = self._key(ns, tenant, gk)
        for _ in range(_CAS_ATTEMPTS):
            current = await state.get_versioned(key)
            group = None if current is None else EventGroup.from_json(current[0], ns, tenant, gk, now)
            if group is None or group.state == "resolved":
                group = EventGroup.new(action, gk, labels, timers, str(provider or action.provider), rule, now)
                group.add(event, timers, None, rule, now)
                due_changed = True
            else:
                before = group.notify_at
                if not group.add(event, timers, str(provider) if provider else None, rule, now):
                    return group  # a retry of an action already in the group
                due_changed = group.notify_at != before
            text = group.to_json()
            if current is None:
                ok = await state.check_and_set(key, text, group.record_ttl())
            else:
                ok = (await state.compare_and_swap(key, current[1], text, group.record_ttl())).ok
            if ok:
                if due_changed:
                    await self._sync_index(ns, tenant, gk, group)
                return group
        raise StateBackendError(f"group {gk} in {ns}/{tenant}: too much contention to add an event")

    async def _sync_index(self, ns: str, tenant: str, gk: str, group: EventGroup | None) -> None:
        """Make the group's due-index entry match its record (``group``: as just written).

        Writers of one group may update the index in another order than they
        wrote the record, and a group may be re-created right after it was
        closed. So after writing, re-read the record and write again until the
        index matches what is stored: the last writer always leaves it right.
        """
        state = self._gw._state
        pending = self._pending_key(ns, tenant, gk)
        for _ in range(5):
            live = group is not None and group.state != "resolved"
            if group is not None and live:
                await state.set(pending, format_rfc3339(group.notify_at), group.record_ttl())
                await state.index_timeout(pending, to_ms(group.notify_at))
            else:
                await state.remove_timeout_index(pending)
                await state.delete(pending)
            value = await state.get(self._key(ns, tenant, gk))
            latest = None if value is None else EventGroup.from_json(value, ns, tenant, gk, self._gw._clock.now())
            if latest is None or latest.state == "resolved":
                if not live:
                    return
            elif live and group is not None and latest.notify_at == group.notify_at:
                return
            group = latest

    # ------------------------------------------------------------------ flushing

    async def flush_due(self, now: datetime) -> int:
        """Background job ``group_flush``: handle every group due at ``now``; returns how many were sent."""
        sent = 0
        for canonical in await self._gw._state.get_expired_timeouts(to_ms(now)):
            parts = canonical.split(":", 3)
            if len(parts) != 4 or parts[2] != "pending_groups":
                continue  # the index is shared with state-machine timeouts and schedules
            try:
                sent += await self._flush_one(parts[0], parts[1], parts[3], now)
            except ActeonError as exc:  # one broken group must not hold up the others
                _log.error("flushing group %s failed: %s", canonical, exc)
        return sent

    async def _flush_one(self, ns: str, tenant: str, gk: str, now: datetime) -> int:
        state = self._gw._state
        key = self._key(ns, tenant, gk)
        current = await state.get_versioned(key)
        group = None if current is None else EventGroup.from_json(current[0], ns, tenant, gk, now)
        if group is None or group.state == "resolved" or group.notify_at > now:
            await self._sync_index(ns, tenant, gk, group)  # a stale index entry: repair it
            return 0
        claimed_due = group.notify_at
        if not await state.check_and_set(self._claim_key(ns, tenant, gk, claimed_due), self._owner, CLAIM_TTL):
            return 0  # another process has this due time
        plan = await self._apply(key, ns, tenant, gk, claimed_due, now, manual=False)
        if plan is None:
            return 0
        await self._after_flush(plan, now)
        return 1 if plan.send else 0

    async def _apply(
        self, key: str, ns: str, tenant: str, gk: str, claimed_due: datetime, now: datetime, *, manual: bool
    ) -> FlushPlan | None:
        """Write the flushed group for the claimed due time; ``None`` if it moved meanwhile."""
        state = self._gw._state
        for _ in range(_CAS_ATTEMPTS):
            current = await state.get_versioned(key)
            if current is None:
                return None
            group = EventGroup.from_json(current[0], ns, tenant, gk, now)
            if group is None or group.state == "resolved" or group.notify_at != claimed_due:
                return None  # someone else flushed it, or it was re-armed: not ours any more
            plan = plan_flush(group, now, manual=manual)
            if plan.close:
                text, ttl = tombstone(plan.group, now), TOMBSTONE_TTL
            else:
                text, ttl = plan.group.to_json(), plan.group.record_ttl()
            if (await state.compare_and_swap(key, current[1], text, ttl)).ok:
                await self._sync_index(ns, tenant, gk, None if plan.close else plan.group)
                return plan
        raise StateBackendError(f"group {gk} in {ns}/{tenant}: too much contention to flush")

    async def _after_flush(self, plan: FlushPlan, now: datetime) -> Outcome | None:
        """Send the notification (when the plan says so) and publish the group's events."""
        gw = self._gw
        group = plan.group
        outcome: Outcome | None = None
        if plan.send:
            gw._metrics.groups_flushed += 1
            if gw._events.has_subscribers:
                gw._events.publish(StreamEvent(
                    "group_flushed", now, group.namespace, group.tenant,
                    data={"group_id": group.group_id, "event_count": len(plan.sent_events)},
                    group_id=group.group_id,
                ))
            notification = self._notification(plan, now)
            try:
                with internal_dispatch(notification, "group"):
                    outcome = await gw.dispatch(notification)
            except ActeonError as exc:
                # The flush is already recorded; the dispatch error is audited by the pipeline.
                _log.error("group %s: notification dispatch failed: %s", group.group_id, exc)
        if plan.close and gw._events.has_subscribers:
            gw._events.publish(StreamEvent(
                "group_resolved", now, group.namespace, group.tenant,
                data={"group_id": group.group_id, "group_key": group.group_key},
                group_id=group.group_id,
            ))
        return outcome

    @staticmethod
    def _notification(plan: FlushPlan, now: datetime) -> Action:
        group = plan.group
        events = plan.sent_events
        payload: dict[str, Any] = {
            "group_id": group.group_id,
            "group_key": group.group_key,
            "event_count": len(events),
            "events": [e.payload for e in events],
            "labels": dict(group.labels),
            "flushed_at": format_rfc3339(now),
            "_group_dispatch": True,
            "resolved_count": sum(1 for e in events if e.identity in plan.resolved),
            "event_details": [
                {
                    "action_id": e.action_id,
                    "fingerprint": e.fingerprint,
                    "status": e.status,
                    "received_at": format_rfc3339(e.received_at),
                    "resolved": e.identity in plan.resolved,
                }
                for e in events
            ],
        }
        return Action(
            namespace=group.namespace, tenant=group.tenant, provider=group.notify_provider,
            action_type=NOTIFICATION_ACTION_TYPE, payload=payload, trace_context=group.trace_context,
            created_at=now,
        )

    # ------------------------------------------------------------------ management

    async def _locate(self, group: str, namespace: str | None, tenant: str | None) -> tuple[str, str, str] | None:
        """``(ns, tenant, group_key)`` of a group given by key or by group id."""
        state = self._gw._state
        if namespace is not None and tenant is not None:
            if await state.get(self._key(namespace, tenant, group)) is not None:
                return namespace, tenant, group
            pairs = await state.scan_keys(namespace, tenant, "group")
        else:
            pairs = await state.scan_keys_by_kind("group")
        now = self._gw._clock.now()
        for canonical, value in pairs:
            ns, t, _, gk = canonical.split(":", 3)
            if (namespace is not None and ns != namespace) or (tenant is not None and t != tenant):
                continue
            if gk == group:
                return ns, t, gk
            parsed = EventGroup.from_json(value, ns, t, gk, now)
            if parsed is not None and parsed.group_id == group and parsed.state != "resolved":
                return ns, t, gk
        return None

    async def load(self, group: str, namespace: str | None, tenant: str | None) -> EventGroup | None:
        where = await self._locate(group, namespace, tenant)
        if where is None:
            return None
        ns, t, gk = where
        value = await self._gw._state.get(self._key(ns, t, gk))
        parsed = None if value is None else EventGroup.from_json(value, ns, t, gk, self._gw._clock.now())
        return None if parsed is None or parsed.state == "resolved" else parsed

    async def list_groups(
        self, namespace: str | None, tenant: str | None, state: str | None, limit: int | None
    ) -> list[EventGroup]:
        store = self._gw._state
        if namespace is not None and tenant is not None:
            pairs = await store.scan_keys(namespace, tenant, "group")
        else:
            pairs = await store.scan_keys_by_kind("group")
        now = self._gw._clock.now()
        out: list[EventGroup] = []
        for canonical, value in pairs:
            ns, t, _, gk = canonical.split(":", 3)
            if (namespace is not None and ns != namespace) or (tenant is not None and t != tenant):
                continue
            group = EventGroup.from_json(value, ns, t, gk, now)
            if group is None or group.state == "resolved" or (state is not None and group.state != state):
                continue
            out.append(group)
        out.sort(key=lambda g: (g.created_at, g.group_key))
        return out if limit is None else out[:limit]

    async def catchup(self, namespace: str, tenant: str, group: str) -> list[StreamEvent] | None:
        """History for ``subscribe_entity("group", ...)`` (workflows.md §10.3): the group's
        current size, and ``group_flushed`` once it was sent; ``None`` for no such group."""
        found = await self.load(group, namespace, tenant)
        if found is None:
            return None
        now = self._gw._clock.now()
        events = [StreamEvent(
            "group_event_added", now, found.namespace, found.tenant,
            data={"group_id": found.group_id, "group_key": found.group_key, "event_count": len(found.events)},
            group_id=found.group_id,
        )]
        if found.last_notified_at is not None:
            events.append(StreamEvent(
                "group_flushed", found.last_notified_at, found.namespace, found.tenant,
                data={"group_id": found.group_id, "event_count": len(found.events)}, group_id=found.group_id,
            ))
        return events

    async def flush(self, group: str, namespace: str | None, tenant: str | None) -> dict[str, Any]:
        """Send the group now, whatever its timers say (DECISIONS D16)."""
        where = await self._locate(group, namespace, tenant)
        if where is None:
            raise GroupNotFound(group)
        ns, t, gk = where
        state = self._gw._state
        now = self._gw._clock.now()
        current = await self.load(gk, ns, t)
        if current is None:
            raise GroupNotFound(group)
        if not current.events:
            raise GroupNotPending()
        # The same claim as the flush job's, so a manual flush and a due tick of
        # the same notify_at never both send.
        if not await state.check_and_set(self._claim_key(ns, t, gk, current.notify_at), self._owner, CLAIM_TTL):
            raise GroupNotPending()
        plan = await self._apply(self._key(ns, t, gk), ns, t, gk, current.notify_at, now, manual=True)
        if plan is None:
            raise GroupNotPending()
        outcome = await self._after_flush(plan, now)
        return {
            "group_id": plan.group.group_id,
            "group_key": gk,
            "event_count": len(plan.sent_events),
            "status": "flushed",
            "outcome": outcome,
        }


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the ``group`` verdict handler and the ``group_flush`` background job."""
    engine = GroupEngine(gateway)
    gateway._grouping = engine
    gateway._verdict_handlers["group"] = engine.handle
    gateway._jobs["group_flush"] = engine.flush_due
    gateway._entity_catchup["group"] = engine.catchup
