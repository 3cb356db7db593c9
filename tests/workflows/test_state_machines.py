"""State machines: transitions, timeouts, notifications, manual transitions, definitions.

Ports workflows.md §14 scenarios 51-54 with DECISIONS D17 (timeouts fire once,
``notify`` dispatches, manual transitions are validated). Inhibition (scenario
55) is in ``test_inhibition.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from acteon import (
    Action,
    AsyncGateway,
    ConfigurationError,
    EventNotFound,
    InvalidTransition,
    LockFailed,
    NotSupportedError,
)
from acteon.outcomes import StateChanged
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing import FakeClock, RecordingProvider
from acteon.workflows._fields import compute_fingerprint
from acteon.workflows._machine_defs import parse_state_machines
from tests.workflows._env import T0, Env

pytestmark = pytest.mark.anyio

TICKET: dict[str, Any] = {
    "name": "ticket",
    "initial_state": "open",
    "states": ["open", "in_progress", "closed"],
    "transitions": [
        {"from": "open", "to": "in_progress", "on_transition": {"notify": True}},
        {"from": "in_progress", "to": "closed", "on_transition": {"notify": True}},
        {"from": "open", "to": "closed"},
    ],
}
ALERT: dict[str, Any] = {
    "name": "alert",
    "initial_state": "firing",
    "states": ["firing", "acknowledged", "stale", "resolved"],
    "transitions": [
        {"from": "firing", "to": "acknowledged"},
        {"from": "firing", "to": "resolved", "on_transition": {"notify": True, "metadata": {"team": "ops"}}},
        {"from": "acknowledged", "to": "resolved"},
        {"from": "stale", "to": "resolved"},
    ],
    "timeouts": [{"in_state": "firing", "after_seconds": 3600, "transition_to": "stale"}],
}
RULES = """
rules:
  - name: tickets
    condition: {field: action.action_type, eq: ticket}
    action: {type: state_machine, state_machine: ticket, fingerprint_fields: [action_type, payload.ticket_id]}
  - name: alerts
    condition: {field: action.action_type, eq: alert}
    action: {type: state_machine, state_machine: alert, fingerprint_fields: [action_type, metadata.cluster]}
"""


def ticket(status: str | None = None, **kw: Any) -> Action:
    kw.setdefault("payload", {"ticket_id": 7})
    return Action(namespace="ns", tenant="t1", provider="webhook", action_type="ticket", status=status, **kw)


def alert(status: str | None = None, cluster: str = "prod", **kw: Any) -> Action:
    return Action(namespace="ns", tenant="t1", provider="webhook", action_type="alert",
                  metadata={"cluster": cluster}, status=status, **kw)


def env(machines: list[dict[str, Any]] | None = None, **kw: Any) -> Env:
    return Env(RULES, state_machines=machines if machines is not None else [TICKET, ALERT], **kw)


def fp_of(action: Action, fields: list[str]) -> str:
    return compute_fingerprint(action, fields)


TICKET_FP = fp_of(ticket(), ["action_type", "payload.ticket_id"])
ALERT_FP = fp_of(alert(), ["action_type", "metadata.cluster"])


# ----------------------------------------------------------------------------- scenario 51, 52


async def test_allowed_transition_notifies_and_a_disallowed_one_is_ignored() -> None:
    async with env() as e:
        outcome = await e.gw.dispatch(ticket("in_progress"))
        assert outcome == StateChanged(TICKET_FP, "open", "in_progress", True)
        [note] = e.notifications(action_type="state_change_notification")
        assert note.provider == "webhook" and (note.namespace, note.tenant) == ("ns", "t1")
        assert note.payload["previous_state"] == "open" and note.payload["new_state"] == "in_progress"
        assert note.payload["state_machine"] == "ticket" and note.payload["fingerprint"] == TICKET_FP
        # back to open is not a transition of the machine: no change, no error, no notification
        assert await e.gw.dispatch(ticket("open")) == StateChanged(TICKET_FP, "in_progress", "in_progress", False)
        assert len(e.notifications(action_type="state_change_notification")) == 1
        # a transition without notify
        other = ticket("closed", payload={"ticket_id": 8})
        assert (await e.gw.dispatch(other)).notify is False  # type: ignore[attr-defined]
        assert len(e.notifications(action_type="state_change_notification")) == 1
        event = await e.gw.get_event("ns", "t1", TICKET_FP)
        assert event is not None and event["state"] == "in_progress" and event["action_type"] == "ticket"
        assert e.gw.metrics["state_changed"] == 3


async def test_notifications_go_to_the_definitions_provider() -> None:
    machine = dict(TICKET, notify_provider="slack")
    async with env([machine, ALERT]) as e:
        await e.gw.dispatch(ticket("in_progress"))
        assert e.notifications(action_type="state_change_notification") == []
        assert len(e.notifications("slack", "state_change_notification")) == 1


async def test_no_status_keeps_the_state_and_rearms_the_timeout() -> None:
    async with env() as e:
        first = await e.gw.dispatch(alert())
        assert first == StateChanged(ALERT_FP, "firing", "firing", False)
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None and event["timeout"]["expires_at"] == "2026-01-15T13:00:00Z"
        e.clock.advance(1800)
        await e.gw.dispatch(alert())
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None and event["timeout"]["expires_at"] == "2026-01-15T13:30:00Z"


# ----------------------------------------------------------------------------- scenario 53: timeouts


async def test_timeout_fires_once_after_the_last_event() -> None:
    async with env() as e:
        sub = e.gw.events(event_type="timeout")
        await e.gw.dispatch(alert("firing"))
        e.clock.advance(1800)
        await e.gw.dispatch(alert("firing"))  # pushes the deadline to T0+90 min
        assert (await e.advance(1800))["state_timeouts"] == 0  # the first deadline passed unnoticed
        assert (await e.advance(1799))["state_timeouts"] == 0
        assert (await e.advance(1))["state_timeouts"] == 1
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None
        assert event["state"] == "stale" and event["transitioned_by"] == "timeout"
        assert event["timeout"] is None  # no timeout configured for stale
        [note] = e.notifications(action_type="timeout_notification")
        assert note.payload == {
            "fingerprint": ALERT_FP, "state_machine": "alert", "previous_state": "firing", "new_state": "stale",
            "fired_at": "2026-01-15T13:30:00Z",
        }
        assert (note.namespace, note.tenant, note.provider) == ("ns", "t1", "webhook")
        assert (await e.advance(3600))["state_timeouts"] == 0  # exactly once
        fired = sub.get_nowait()
        assert fired is not None and fired.to_dict()["new_state"] == "stale"
        assert (fired.namespace, fired.tenant) == ("ns", "t1")
        assert sub.get_nowait() is None
        assert e.gw.metrics["state_timeouts"] == 1


async def test_leaving_the_state_cancels_its_timeout() -> None:
    async with env() as e:
        await e.gw.dispatch(alert("firing"))
        await e.gw.dispatch(alert("acknowledged"))
        assert (await e.advance(7200))["state_timeouts"] == 0
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None and event["state"] == "acknowledged"


async def test_chained_timeouts() -> None:
    machine = {
        "name": "alert", "initial_state": "firing", "states": ["firing", "stale", "closed"],
        "transitions": [], "timeouts": [
            {"in_state": "firing", "after_seconds": 60, "transition_to": "stale"},
            {"state": "stale", "after_seconds": 120, "transition_to": "closed"},  # the documented spelling
        ],
    }
    async with env([TICKET, machine]) as e:
        await e.gw.dispatch(alert())
        assert (await e.advance(60))["state_timeouts"] == 1
        assert (await e.advance(119))["state_timeouts"] == 0
        assert (await e.advance(1))["state_timeouts"] == 1
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None and event["state"] == "closed"
        assert len(e.notifications(action_type="timeout_notification")) == 2


async def test_a_timeout_armed_before_a_restart_fires_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    clock = FakeClock(T0)

    def gateway(rec: RecordingProvider) -> AsyncGateway:
        return AsyncGateway(rules=RULES, state=SQLiteStateStore(path), providers=[rec], clock=clock,
                            background=False, state_machines=[TICKET, ALERT])

    async with gateway(RecordingProvider("webhook")) as gw:
        await gw.dispatch(alert("firing"))
    clock.advance(3600)
    rec = RecordingProvider("webhook")
    async with gateway(rec) as gw:
        assert (await gw.tick())["state_timeouts"] == 1
        assert (await gw.tick())["state_timeouts"] == 0
    async with gateway(rec) as gw:
        assert (await gw.tick())["state_timeouts"] == 0
    assert [a.action_type for a in rec.actions] == ["timeout_notification"]


# ----------------------------------------------------------------------------- scenario 54: fingerprints


def test_fingerprint_vector() -> None:
    action = alert()
    expected = hashlib.sha256(b"action_type=alert;metadata.cluster=prod;").hexdigest()
    assert compute_fingerprint(action, ["action_type", "metadata.cluster"]) == expected
    assert compute_fingerprint(action, ["metadata.cluster", "action_type"]) != expected
    missing = alert(cluster="x").model_copy(update={"metadata": {}})
    assert compute_fingerprint(missing, ["action_type", "metadata.cluster"]) == hashlib.sha256(
        b"action_type=alert;metadata.cluster=;").hexdigest()
    assert compute_fingerprint(action, []) == hashlib.sha256(b"").hexdigest()
    assert compute_fingerprint(action, ["id", "status", "payload.none", "whatever"]) == hashlib.sha256(
        f"id={action.id};status=;payload.none=;whatever=;".encode()).hexdigest()


async def test_an_explicit_fingerprint_is_used_verbatim() -> None:
    async with env() as e:
        outcome = await e.gw.dispatch(alert(fingerprint="incident-42"))
        assert isinstance(outcome, StateChanged) and outcome.fingerprint == "incident-42"


# ----------------------------------------------------------------------------- errors and locks


async def test_unknown_machine_is_a_configuration_error_and_audited() -> None:
    rules = """
rules:
  - name: r
    condition: {all: []}
    action: {type: state_machine, state_machine: nope}
"""
    async with Env(rules, state_machines=[TICKET]) as e:
        action = ticket()
        with pytest.raises(ConfigurationError, match=r"^configuration error: state machine not found: nope$"):
            await e.gw.dispatch(action)
        record = await e.gw.audit_get(action.id)
        assert record is not None and record.outcome == "failed" and record.verdict == "state_machine"


async def test_the_event_lock_is_released_when_a_write_fails() -> None:
    async with env() as e:
        real_set = e.state.set
        calls = {"n": 0}

        async def failing_set(key: Any, value: str, ttl: float | None = None) -> None:
            if ":event_state:" in str(key) and calls["n"] == 0:
                calls["n"] += 1
                from acteon import StateBackendError

                raise StateBackendError("disk full")
            await real_set(key, value, ttl)

        e.state.set = failing_set  # type: ignore[method-assign]
        from acteon import StateError

        with pytest.raises(StateError):
            await e.gw.dispatch(ticket("in_progress"))
        guard = await e.gw._lock.try_acquire(f"state:ns:t1:{TICKET_FP}", 5)
        assert guard is not None
        await guard.release()
        assert (await e.gw.dispatch(ticket("in_progress"))).new_state == "in_progress"  # type: ignore[attr-defined]


async def test_a_held_event_lock_fails_the_dispatch() -> None:
    async with env() as e:
        e.gw._lock.poll_interval = 0.5
        guard = await e.gw._lock.try_acquire(f"state:ns:t1:{TICKET_FP}", 60)
        assert guard is not None
        with pytest.raises(LockFailed, match="lock acquisition failed"):
            await e.gw.dispatch(ticket("in_progress"))
        await guard.release()


# ----------------------------------------------------------------------------- manual transitions and queries


async def test_manual_transition_is_validated() -> None:
    async with env() as e:
        with pytest.raises(EventNotFound, match=f"event not found: {TICKET_FP}"):
            await e.gw.transition_event("ns", "t1", TICKET_FP, "closed")
        await e.gw.dispatch(ticket())
        with pytest.raises(InvalidTransition, match="no transition from 'open' to 'nope'"):
            await e.gw.transition_event("ns", "t1", TICKET_FP, "nope")
        result = await e.gw.transition_event("ns", "t1", TICKET_FP, "in_progress")
        assert result == StateChanged(TICKET_FP, "open", "in_progress", True)
        assert len(e.notifications(action_type="state_change_notification")) == 1
        with pytest.raises(InvalidTransition):
            await e.gw.transition_event("ns", "t1", TICKET_FP, "open")
        forced = await e.gw.transition_event("ns", "t1", TICKET_FP, "open", force=True)
        assert forced == StateChanged(TICKET_FP, "in_progress", "open", False)
        with pytest.raises(InvalidTransition):
            await e.gw.transition_event("ns", "t1", TICKET_FP, "no-such-state", force=True)
        event = await e.gw.get_event("ns", "t1", TICKET_FP)
        assert event is not None and event["state"] == "open" and event["transitioned_by"] == "manual"
        assert event["action_type"] == "ticket"


async def test_manual_transition_moves_timeouts_with_the_state() -> None:
    async with env() as e:
        await e.gw.dispatch(alert("firing"))
        await e.gw.transition_event("ns", "t1", ALERT_FP, "acknowledged")
        assert (await e.advance(7200))["state_timeouts"] == 0
        event = await e.gw.get_event("ns", "t1", ALERT_FP)
        assert event is not None and event["state"] == "acknowledged"


async def test_list_events() -> None:
    async with env() as e:
        await e.gw.dispatch(alert("firing", cluster="a"))
        await e.gw.dispatch(alert("firing", cluster="b"))
        await e.gw.dispatch(alert("resolved", cluster="b"))
        events = await e.gw.list_events("ns", "t1")
        assert sorted(ev["state"] for ev in events) == ["firing", "resolved"]
        assert set(events[0]) == {"fingerprint", "state", "action_type", "updated_at", "state_machine"}
        assert [ev["state"] for ev in await e.gw.list_events("ns", "t1", status="resolved")] == ["resolved"]
        assert len(await e.gw.list_events("ns", "t1", limit=1)) == 1
        assert await e.gw.list_events("ns", "other") == []
        # upstream-shaped values that are not JSON read as their raw state
        await e.state.set("ns:t1:event_state:raw-fp", "weird")
        raw = await e.gw.get_event("ns", "t1", "raw-fp")
        assert raw is not None and raw["state"] == "weird"


async def test_status_changed_events_on_the_stream() -> None:
    async with env() as e:
        sub = e.gw.events(event_type="action_status_changed")
        action = ticket("in_progress")
        await e.gw.dispatch(action)
        await e.gw.dispatch(ticket("in_progress"))  # no change: no event
        event = sub.get_nowait()
        assert event is not None
        assert event.to_dict()["previous_status"] == "open" and event.to_dict()["new_status"] == "in_progress"
        assert event.action_id == action.id
        assert sub.get_nowait() is None


# ----------------------------------------------------------------------------- definitions


@pytest.mark.parametrize("change,message", [
    ({"initial_state": "ghost"}, "initial_state 'ghost' is not one of the states"),
    ({"transitions": [{"from": "open", "to": "ghost"}]}, "transitions[0]: 'to' state 'ghost' is not one of"),
    ({"transitions": [{"from": "open"}]}, "transitions[0]: 'to' must be a non-empty string"),
    ({"timeouts": [{"in_state": "open", "after_seconds": 0, "transition_to": "closed"}]}, "positive integer"),
    ({"timeouts": [{"in_state": "ghost", "after_seconds": 5, "transition_to": "closed"}]},
     "timeouts[0]: 'in_state' 'ghost'"),
    ({"colour": "red"}, "unknown key(s) 'colour'"),
    ({"states": []}, "'states' must be a non-empty list"),
    ({"states": ["open", "open", "in_progress", "closed"]}, "state 'open' is listed twice"),
    ({"transitions": [{"from": "open", "to": "closed", "on_transition": {"notify": "yes"}}]}, "'notify' must be"),
])
def test_invalid_definitions_are_rejected_with_where(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"state_machines\[0\] \('ticket'\)") as info:
        parse_state_machines([dict(TICKET, **change)])
    assert message in str(info.value)


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"state_machines\[1\] \('ticket'\): .* already defined"):
        AsyncGateway(state_machines=[TICKET, TICKET])


def test_definitions_round_trip_and_are_listed() -> None:
    gw = AsyncGateway(state_machines=[TICKET, ALERT])
    assert set(gw.state_machines) == {"ticket", "alert"}
    assert gw.state_machines["alert"]["timeouts"] == ALERT["timeouts"]
    assert parse_state_machines([gw.state_machines["ticket"]])["ticket"].transitions[0].notify is True


def test_state_machines_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "acteon.toml"
    config.write_text("""
[[state_machines]]
name = "ticket"
initial_state = "open"
states = ["open", "closed"]
transitions = [{ from = "open", to = "closed", on_transition = { notify = true } }]

[[state_machines.timeouts]]
in_state = "open"
after_seconds = 60
transition_to = "closed"
""")
    gw = AsyncGateway.from_config(config)
    assert gw.state_machines["ticket"]["timeouts"][0]["after_seconds"] == 60
    bad = tmp_path / "bad.toml"
    bad.write_text('[[state_machines]]\nname = "x"\ninitial_state = "a"\nstates = ["b"]\n')
    with pytest.raises(ConfigurationError, match=r"state_machines\[0\] \('x'\): initial_state 'a'"):
        AsyncGateway.from_config(bad)


def test_state_machine_verdicts_are_supported() -> None:
    try:
        AsyncGateway(state_machines=[TICKET])
    except NotSupportedError:  # pragma: no cover - the handler is registered
        pytest.fail("state machines should be supported")


def test_sync_twins() -> None:
    from acteon import Gateway

    rec = RecordingProvider("webhook")
    with Gateway(rules=RULES, providers=[rec], clock=FakeClock(T0), background=False,
                 state_machines=[TICKET, ALERT]) as gw:
        gw.dispatch(ticket())
        assert [ev["state"] for ev in gw.list_events("ns", "t1")] == ["open"]
        assert gw.transition_event("ns", "t1", TICKET_FP, "closed").new_state == "closed"
        event = gw.get_event("ns", "t1", TICKET_FP)
        assert event is not None and json.dumps(event)
