"""State machines: the ``state_machine`` verdict, timeouts and inhibition (workflows.md §7).

One event (identified by its fingerprint, §7.2) moves through a machine's
states as actions about it arrive. Stored per scope:

* ``event_state:{fp}`` -- ``{"state", "fingerprint", "updated_at", "action_type", ...}``;
* ``active_events:{action_type}`` -- ``{"state", "fingerprint"}``, read by the
  rules' ``has_active_event`` (YAML ``has_active_event:``/``inhibit_if_active:``,
  CEL ``has_active_event(...)``). Upstream lets the last event of a type win, so
  one resolved event hid another still firing; here the value also keeps the
  set of active fingerprints (``"active"``) and ``state`` stays active while
  any of them is. With ``label_field`` in the definition the same is kept per
  label value at ``active_events:{action_type}:{value}``, which makes the
  two-argument ``has_active_event(type, label)`` useful;
* ``event_timeout:{fp}`` plus its timeout-index entry, re-armed by every event
  in a state that has a timeout.

Every change to one event happens under the lock ``state:{ns}:{tenant}:{fp}``,
released on every path (D8). The ``state_timeouts`` job fires due timeouts:
it takes the same lock (skipping events another process holds), re-checks
the deadline and that the event is still in the state the timeout was armed
for, writes the new state, and deletes the timeout record -- only the process
whose delete removed it sends the notification, so each timeout fires once
(D17). ``notify: true`` transitions and timeouts dispatch a notification
action through the pipeline (D17), to the definition's ``notify_provider`` or
else the provider of the action that drove the event.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from acteon._action import Action
from acteon._caller import Caller
from acteon._events import StreamEvent
from acteon._exceptions import (
    ActeonError,
    ConfigurationError,
    EventNotFound,
    InvalidTransition,
    LockFailed,
    StateBackendError,
    StateTimeout,
)
from acteon._timefmt import format_rfc3339, parse_rfc3339
from acteon.outcomes import Outcome, StateChanged
from acteon.rules import Verdict
from acteon.state._base import LockGuard
from acteon.workflows._fields import action_fingerprint, field_value
from acteon.workflows._group_model import to_ms
from acteon.workflows._internal import internal_dispatch, internal_origin
from acteon.workflows._machine_defs import StateMachineDef, parse_state_machines

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.state_machines")

INACTIVE_STATES = frozenset({"resolved", "closed"})
"""States ``has_active_event`` reports as not active (rules.md / workflows.md §7.6)."""
NOTIFY_ACTION_TYPE = "state_change_notification"
TIMEOUT_ACTION_TYPE = "timeout_notification"
LOCK_TTL = 30.0
LOCK_WAIT = 5.0
CLAIM_TTL = 300.0
"""How long a claimed timeout stays blocked if its process dies before firing it."""
_CAS_ATTEMPTS = 100


def _parse_record(raw: str | None) -> dict[str, Any] | None:
    """An ``event_state`` value as a dict: non-JSON text is ``{"state": text}``."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return {"state": raw}
    return data if isinstance(data, dict) else {"state": raw}


def _current_state(record: dict[str, Any] | None, initial: str) -> str:
    if record is None or not isinstance(record.get("state"), str):
        return initial
    state: str = record["state"]
    return state


class _Change:
    """What one transition did, for the outcome, the events and the notification."""

    __slots__ = ("fingerprint", "machine", "new", "notify", "previous", "record", "transition_meta")

    def __init__(self, fingerprint: str, machine: str, previous: str, new: str, notify: bool,
                 record: dict[str, Any], transition_meta: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.machine = machine
        self.previous = previous
        self.new = new
        self.notify = notify
        self.record = record
        self.transition_meta = transition_meta


class StateMachineEngine:
    """State machines for one gateway; kept at ``gateway._state_machines``."""

    def __init__(self, gateway: AsyncGateway, machines: dict[str, StateMachineDef]) -> None:
        self._gw = gateway
        self.machines = machines
        self._owner = uuid.uuid4().hex

    # ------------------------------------------------------------------ keys and locks

    @staticmethod
    def _key(ns: str, tenant: str, kind: str, ident: str) -> str:
        return f"{ns}:{tenant}:{kind}:{ident}"

    async def _lock(self, ns: str, tenant: str, fp: str) -> LockGuard:
        try:
            return await self._gw._lock.acquire(f"state:{ns}:{tenant}:{fp}", LOCK_TTL, LOCK_WAIT)
        except StateTimeout as exc:
            raise LockFailed(str(exc)) from exc

    def machine(self, name: Any) -> StateMachineDef:
        machine = self.machines.get(name) if isinstance(name, str) else None
        if machine is None:
            raise ConfigurationError(f"state machine not found: {name}")
        return machine

    # ------------------------------------------------------------------ verdict

    async def handle(self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None) -> Outcome:
        """Move the action's event to ``action.status`` if the machine allows it (§7.3)."""
        gw = self._gw
        if internal_origin(action) is not None:
            # The gateway's own notification matched a state-machine rule: deliver it.
            return await gw._execute_action(action)
        params = verdict.params
        machine = self.machine(params.get("state_machine"))
        fields = [str(f) for f in params.get("fingerprint_fields") or []]
        fp = action_fingerprint(action, fields)
        ns, tenant = action.namespace, action.tenant
        guard = await self._lock(ns, tenant, fp)
        try:
            record = _parse_record(await gw._state.get(self._key(ns, tenant, "event_state", fp)))
            current = _current_state(record, machine.initial_state)
            target = action.status if action.status is not None else current
            new, notify, meta = current, False, {}
            if target != current:
                allowed = machine.transition(current, target)
                if allowed is not None:  # a transition the machine does not list is ignored (no error)
                    new, notify = target, allowed.notify
                    meta = {"webhook_url": allowed.webhook_url, "metadata": dict(allowed.metadata)}
            label = None if machine.label_field is None else field_value(action, machine.label_field)
            stored = {
                "state": new, "fingerprint": fp, "updated_at": format_rfc3339(now),
                "action_type": action.action_type, "state_machine": machine.name,
                "provider": action.provider, "last_action_id": action.id,
            }
            if label is not None:
                stored["label"] = label
            await self._write(ns, tenant, machine, stored, now, action.trace_context)
        finally:
            await guard.release()
        change = _Change(fp, machine.name, current, new, notify, stored, meta)
        gw._metrics.state_changed += 1
        await self._announce(ns, tenant, change, action.id, action.action_type, now, "action")
        return StateChanged(fp, current, new, notify)

    async def _write(
        self, ns: str, tenant: str, machine: StateMachineDef, record: dict[str, Any], now: datetime,
        trace_context: dict[str, str],
    ) -> None:
        """Store the event's state, its active-event entries and its timeout (all under the event lock)."""
        state = self._gw._state
        fp, new = record["fingerprint"], record["state"]
        await state.set(self._key(ns, tenant, "event_state", fp), json.dumps(record, separators=(",", ":")))
        action_type = record.get("action_type")
        if isinstance(action_type, str):
            await self._mark_active(ns, tenant, action_type, fp, new)
            label = record.get("label")
            if isinstance(label, str):
                await self._mark_active(ns, tenant, f"{action_type}:{label}", fp, new)
        timeout_key = self._key(ns, tenant, "event_timeout", fp)
        timeout = machine.timeout_for(new)
        if timeout is None:
            await state.delete(timeout_key)
            await state.remove_timeout_index(timeout_key)
            return
        expires = now + timedelta(seconds=timeout.after_seconds)
        # Every event in a state with a timeout pushes the deadline out again (§7.3 step 7).
        entry = {
            "fingerprint": fp, "state_machine": machine.name, "current_state": new,
            "transition_to": timeout.transition_to, "expires_at": format_rfc3339(expires),
            "created_at": format_rfc3339(now), "trace_context": dict(trace_context),
            "action_type": action_type, "provider": record.get("provider"), "label": record.get("label"),
        }
        await state.set(timeout_key, json.dumps(entry, separators=(",", ":")))
        await state.index_timeout(timeout_key, to_ms(expires))

    async def _mark_active(self, ns: str, tenant: str, ident: str, fp: str, new_state: str) -> None:
        """Record ``fp``'s state in ``active_events:{ident}`` (compare-and-swap, see module doc)."""
        state = self._gw._state
        key = self._key(ns, tenant, "active_events", ident)
        for _ in range(_CAS_ATTEMPTS):
            current = await state.get_versioned(key)
            active: dict[str, str] = {}
            old: dict[str, Any] = {}
            if current is not None:
                old = _parse_record(current[0]) or {}
                if isinstance(old.get("active"), dict):
                    active = {str(k): str(v) for k, v in old["active"].items()}
                elif isinstance(old.get("fingerprint"), str) and isinstance(old.get("state"), str):
                    # An upstream-shaped value: keep its event if it is still active.
                    if old["state"] not in INACTIVE_STATES:
                        active[old["fingerprint"]] = old["state"]
            active.pop(fp, None)
            if new_state not in INACTIVE_STATES:
                active[fp] = new_state
                shown = new_state
            else:
                # The latest event ended; the type stays active while another event is.
                shown = next(reversed(active.values()), new_state)
            if old.get("active") == active and old.get("state") == shown:
                return  # nothing a reader can see changes: spare the hot key a write
            value = json.dumps({"state": shown, "fingerprint": fp, "active": active}, separators=(",", ":"))
            if current is None:
                ok = await state.check_and_set(key, value)
            else:
                ok = (await state.compare_and_swap(key, current[1], value)).ok
            if ok:
                return
        raise StateBackendError(f"active_events:{ident} in {ns}/{tenant}: too much contention")

    # ------------------------------------------------------------------ notifications and events

    async def _announce(
        self, ns: str, tenant: str, change: _Change, action_id: str, action_type: str | None, now: datetime,
        by: str,
    ) -> None:
        """Publish ``action_status_changed`` for a real change and send the ``notify`` notification."""
        gw = self._gw
        if change.previous == change.new:
            return
        if gw._events.has_subscribers:
            gw._events.publish(StreamEvent(
                "action_status_changed", now, ns, tenant, action_type, action_id or None,
                {"action_id": action_id, "fingerprint": change.fingerprint, "state_machine": change.machine,
                 "previous_status": change.previous, "new_status": change.new},
            ))
        if change.notify:
            payload: dict[str, Any] = {
                "fingerprint": change.fingerprint, "state_machine": change.machine,
                "previous_state": change.previous, "new_state": change.new, "changed_at": format_rfc3339(now),
                "transitioned_by": by, "action_type": action_type, "action_id": action_id,
            }
            payload.update({k: v for k, v in change.transition_meta.items() if v})
            await self._notify(ns, tenant, change, NOTIFY_ACTION_TYPE, payload, now)

    async def _notify(
        self, ns: str, tenant: str, change: _Change, action_type: str, payload: dict[str, Any], now: datetime
    ) -> None:
        gw = self._gw
        machine = self.machines.get(change.machine)
        provider = (machine.notify_provider if machine is not None else None) or change.record.get("provider")
        if not isinstance(provider, str) or not provider:
            _log.error("state machine %s: no provider for the %s of %s (set notify_provider)",
                       change.machine, action_type, change.fingerprint)
            return
        notification = Action(namespace=ns, tenant=tenant, provider=provider, action_type=action_type,
                              payload=payload, fingerprint=change.fingerprint, created_at=now)
        try:
            with internal_dispatch(notification, "state_machine"):
                await gw.dispatch(notification)
        except ActeonError as exc:  # the state change stands; the pipeline audited the failure
            _log.error("state machine %s: %s dispatch failed: %s", change.machine, action_type, exc)

    # ------------------------------------------------------------------ timeouts

    async def fire_timeouts(self, now: datetime) -> int:
        """Background job ``state_timeouts``: fire every timeout due at ``now``; returns how many fired."""
        fired = 0
        for canonical in await self._gw._state.get_expired_timeouts(to_ms(now)):
            parts = canonical.split(":", 3)
            if len(parts) != 4 or parts[2] != "event_timeout":
                continue  # the index also holds due groups and scheduled actions
            try:
                fired += await self._fire(parts[0], parts[1], parts[3], now)
            except ActeonError as exc:  # one broken timeout must not hold up the others
                _log.error("state-machine timeout %s failed: %s", canonical, exc)
        return fired

    async def _fire(self, ns: str, tenant: str, fp: str, now: datetime) -> int:
        gw = self._gw
        state = gw._state
        guard = await gw._lock.try_acquire(f"state:{ns}:{tenant}:{fp}", LOCK_TTL)
        if guard is None:
            return 0  # a dispatch or another process is on this event; the next tick sees it
        timeout_key = self._key(ns, tenant, "event_timeout", fp)
        try:
            raw = await state.get(timeout_key)
            entry = None if raw is None else _parse_record(raw)
            if entry is None or not isinstance(entry.get("transition_to"), str):
                if raw is not None:
                    _log.error("unreadable state-machine timeout %s dropped: %r", timeout_key, raw)
                    await state.delete(timeout_key)
                await state.remove_timeout_index(timeout_key)
                return 0
            try:
                expires = parse_rfc3339(str(entry.get("expires_at")))
            except ValueError:
                expires = now
            if expires > now:  # re-armed after the index entry was read
                await state.index_timeout(timeout_key, to_ms(expires))
                return 0
            record = _parse_record(await state.get(self._key(ns, tenant, "event_state", fp))) or {}
            previous = str(entry.get("current_state", ""))
            if record and record.get("state") != previous:
                # The event moved on (or this timeout already fired and the process
                # died before removing it): the timeout is stale.
                await state.delete(timeout_key)
                await state.remove_timeout_index(timeout_key)
                return 0
            # Claim this deadline before acting: the lock already keeps processes
            # apart, the claim also holds if a stalled holder's lock ran out.
            claim = self._key(ns, tenant, "event_timeout_claim", f"{fp}:{to_ms(expires)}")
            if not await state.check_and_set(claim, self._owner, CLAIM_TTL):
                return 0
            name = str(entry.get("state_machine", ""))
            machine = self.machines.get(name)
            new = entry["transition_to"]
            stored = {k: v for k, v in record.items() if k not in ("state", "updated_at", "transitioned_by")}
            stored.update({
                "state": new, "fingerprint": fp, "updated_at": format_rfc3339(now), "transitioned_by": "timeout",
                "state_machine": name,
            })
            for k in ("action_type", "provider", "label"):
                if stored.get(k) is None and entry.get(k) is not None:
                    stored[k] = entry[k]
            if machine is not None:
                await self._write(ns, tenant, machine, stored, now, dict(entry.get("trace_context") or {}))
            else:
                await state.set(self._key(ns, tenant, "event_state", fp), json.dumps(stored, separators=(",", ":")))
            if machine is None:
                await state.delete(timeout_key)
                await state.remove_timeout_index(timeout_key)
            # (with a machine, _write removed the record or armed the next state's timeout)
        finally:
            await guard.release()
        gw._metrics.state_timeouts += 1
        change = _Change(fp, name, previous, new, False, stored, {})
        action_type = stored.get("action_type") if isinstance(stored.get("action_type"), str) else None
        if gw._events.has_subscribers:
            gw._events.publish(StreamEvent(
                "timeout", now, ns, tenant,
                data={"fingerprint": fp, "state_machine": name, "previous_state": previous, "new_state": new},
            ))
        await self._announce(ns, tenant, change, "", action_type, now, "timeout")
        await self._notify(ns, tenant, change, TIMEOUT_ACTION_TYPE, {
            "fingerprint": fp, "state_machine": name, "previous_state": previous, "new_state": new,
            "fired_at": format_rfc3339(now),
        }, now)
        return 1

    # ------------------------------------------------------------------ management

    async def transition(self, ns: str, tenant: str, fp: str, to_state: str, force: bool) -> StateChanged:
        """Move an event by hand, validated against its machine unless ``force`` (§7.5, D17)."""
        gw = self._gw
        now = gw._clock.now()
        guard = await self._lock(ns, tenant, fp)
        try:
            record = _parse_record(await gw._state.get(self._key(ns, tenant, "event_state", fp)))
            if record is None:
                raise EventNotFound(fp)
            name = record.get("state_machine")
            machine = self.machines.get(name) if isinstance(name, str) else None
            current = _current_state(record, machine.initial_state if machine else "unknown")
            notify, meta = False, {}
            if to_state != current:
                allowed = None if machine is None else machine.transition(current, to_state)
                if allowed is not None:
                    notify = allowed.notify
                    meta = {"webhook_url": allowed.webhook_url, "metadata": dict(allowed.metadata)}
                elif not force:
                    if machine is None:
                        raise ConfigurationError(
                            f"event {fp} names no known state machine ({name!r}); "
                            "transition_event(..., force=True) sets its state without validation"
                        )
                    raise InvalidTransition(machine.name, current, to_state)
                elif machine is not None and to_state not in machine.states:
                    raise InvalidTransition(machine.name, current, to_state)
            stored = dict(record)
            stored.pop("transitioned_by", None)
            stored.update({"state": to_state, "fingerprint": fp, "updated_at": format_rfc3339(now),
                           "transitioned_by": "manual"})
            if to_state != current:
                if machine is not None:
                    await self._write(ns, tenant, machine, stored, now, {})
                else:
                    await gw._state.set(self._key(ns, tenant, "event_state", fp),
                                        json.dumps(stored, separators=(",", ":")))
        finally:
            await guard.release()
        change = _Change(fp, machine.name if machine else str(name), current, to_state, notify, stored, meta)
        action_type = stored.get("action_type") if isinstance(stored.get("action_type"), str) else None
        await self._announce(ns, tenant, change, "", action_type, now, "manual")
        return StateChanged(fp, current, to_state, notify)

    async def list_events(self, ns: str, tenant: str, status: str | None, limit: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for canonical, raw in await self._gw._state.scan_keys(ns, tenant, "event_state"):
            record = _parse_record(raw) or {}
            state = record.get("state") if isinstance(record.get("state"), str) else "unknown"
            if status is not None and state != status:
                continue
            out.append({
                "fingerprint": canonical.rsplit(":", 1)[-1],
                "state": state,
                "action_type": record.get("action_type"),
                "updated_at": record.get("updated_at"),
                "state_machine": record.get("state_machine"),
            })
        out.sort(key=lambda e: e["fingerprint"])
        return out if limit is None else out[:limit]

    async def get_event(self, ns: str, tenant: str, fp: str) -> dict[str, Any] | None:
        state = self._gw._state
        record = _parse_record(await state.get(self._key(ns, tenant, "event_state", fp)))
        if record is None:
            return None
        out = dict(record)
        out.setdefault("fingerprint", fp)
        if not isinstance(out.get("state"), str):
            out["state"] = "unknown"
        timeout = _parse_record(await state.get(self._key(ns, tenant, "event_timeout", fp)))
        out["timeout"] = None if timeout is None else {
            "expires_at": timeout.get("expires_at"), "transition_to": timeout.get("transition_to"),
        }
        return out


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the ``state_machine`` verdict handler and the ``state_timeouts`` job."""
    engine = StateMachineEngine(gateway, parse_state_machines(options.get("state_machines")))
    gateway._state_machines = engine
    gateway._verdict_handlers["state_machine"] = engine.handle
    gateway._jobs["state_timeouts"] = engine.fire_timeouts
