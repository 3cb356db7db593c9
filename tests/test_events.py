"""Event stream: envelope, filters, lagged marker, sanitisation, entity subscriptions
(workflows.md §10, §14 scenarios 60-62)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from acteon import (
    Action,
    AsyncGateway,
    EntityNotFoundError,
    EventFilter,
    Gateway,
    StreamEvent,
    UsageError,
)
from acteon._events import EventBus
from acteon.audit import MemoryAuditStore
from acteon.outcomes import Executed, PendingApproval, Rerouted
from acteon.testing import FakeClock, RecordingProvider

pytestmark = pytest.mark.anyio

T = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def action(**overrides: Any) -> Action:
    data: dict[str, Any] = {"namespace": "ns", "tenant": "t1", "provider": "email", "action_type": "send"}
    data.update(overrides)
    return Action(**data)


def gateway(rules: str = "rules: []", **kwargs: Any) -> AsyncGateway:
    providers = [RecordingProvider("email", response={"secret": "body"}), RecordingProvider("sms")]
    return AsyncGateway(rules=rules, providers=providers, clock=FakeClock(T), background=False, **kwargs)


def drain(sub: Any) -> list[StreamEvent]:
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out


def chain_event(kind: str, chain_id: str, action_id: str = "origin", **data: Any) -> StreamEvent:
    return StreamEvent(kind, T, "ns", "t1", "research", action_id, {"chain_id": chain_id, **data})


def group_event(kind: str, group_id: str, **data: Any) -> StreamEvent:
    return StreamEvent(kind, T, "ns", "t1", None, None, {"group_id": group_id, **data})


# ----------------------------------------------------------------------------- envelope


def test_envelope_flattens_variant_fields_and_omits_null_action_fields() -> None:
    event = StreamEvent("group_flushed", T, "ns", "t1", None, None, {"group_id": "g", "event_count": 3})
    assert event.to_dict() == {"id": event.id, "timestamp": "2026-01-15T12:00:00Z", "type": "group_flushed",
                               "group_id": "g", "event_count": 3, "namespace": "ns", "tenant": "t1"}
    assert event.group_id == "g"  # taken from the data for the filters
    with_action = StreamEvent("approval_resolved", T, "ns", "t1", "refund", "a1",
                              {"approval_id": "x", "decision": "approved"})
    assert list(with_action.to_dict()) == ["id", "timestamp", "type", "approval_id", "decision", "namespace",
                                           "tenant", "action_type", "action_id"]


def test_event_ids_are_uuid7_from_the_event_time() -> None:
    early = StreamEvent("timeout", T)
    late = StreamEvent("timeout", T.replace(hour=13))
    assert early.id[14] == "7" and early.id < late.id
    assert int(early.id.replace("-", "")[:12], 16) == int(T.timestamp() * 1000)


def test_from_dict_round_trip_and_unknown_types() -> None:
    event = StreamEvent("chain_step_completed", T, "ns", "t1", "research", "a1",
                        {"chain_id": "c", "step_name": "s", "step_index": 0, "success": True})
    back = StreamEvent.from_dict(event.to_dict())
    assert back.to_dict() == event.to_dict() and back.chain_id == "c"
    odd = StreamEvent.from_dict({"id": "x", "timestamp": "2026-01-15T12:00:00Z", "type": "task_from_the_future",
                                 "namespace": "ns", "tenant": "t1", "foo": 1})
    assert odd.type == "unknown" and odd.data == {"foo": 1}
    dispatched = StreamEvent.from_dict({"type": "action_dispatched", "outcome": "Deduplicated", "provider": "p",
                                        "namespace": "ns", "tenant": "t1"})
    assert dispatched.outcome_kind == "deduplicated"
    with pytest.raises(ValueError, match="'type'"):
        StreamEvent.from_dict({"id": "x"})


# ----------------------------------------------------------------------------- filters (scenario 61)


def test_filter_rules_of_section_10_2() -> None:
    dispatched = StreamEvent("action_dispatched", T, "ns", "t1", "send", "a1",
                             {"outcome": {"Executed": {}}, "provider": "email"}, outcome_kind="executed")
    chain_x = chain_event("chain_step_completed", "X", action_id="a1")
    chain_y = chain_event("chain_completed", "Y")
    group_g = group_event("group_event_added", "G", group_key="k", event_count=1)
    approval = StreamEvent("approval_resolved", T, "ns", "t1", "send", "a1",
                           {"approval_id": "ap", "decision": "approved", "chain_id": "X", "group_id": "G"})
    events = [dispatched, chain_x, chain_y, group_g, approval]

    def passing(**kw: Any) -> list[StreamEvent]:
        flt = EventFilter(**kw)
        return [e for e in events if flt.matches(e)]

    assert passing(outcome="executed") == [dispatched]  # every other type is dropped
    assert passing(outcome="failed") == []
    assert passing(chain_id="X") == [chain_x]  # not the approval event carrying a chain_id
    assert passing(group_id="G") == [group_g]
    assert passing(action_id="a1") == [dispatched, chain_x, approval]  # chain events of the origin action
    assert passing(action_type="send") == [dispatched, approval]  # events without one are dropped
    assert passing(event_type="chain_completed") == [chain_y]
    assert passing(namespace="other") == []
    assert passing(tenant="t1", event_type="approval_resolved") == [approval]
    lagged = StreamEvent("lagged", T, data={"skipped": 1})
    assert EventFilter(namespace="x", outcome="executed").matches(lagged)


async def test_gateway_keyword_filters_including_group_and_chain() -> None:
    async with gateway() as gw:
        by_chain = gw.events(chain_id="X")
        by_group = gw.events(group_id="G")
        executed = gw.events(outcome="executed", namespace="ns")
        other_ns = gw.events(namespace="other")
        await gw.dispatch(action())
        gw._events.publish(chain_event("chain_advanced", "X"))
        gw._events.publish(chain_event("chain_advanced", "Z"))
        gw._events.publish(group_event("group_resolved", "G", group_key="k"))
        assert [e.type for e in drain(by_chain)] == ["chain_advanced"]
        assert [e.data["group_id"] for e in drain(by_group)] == ["G"]
        assert [e.type for e in drain(executed)] == ["action_dispatched"]
        assert drain(other_ns) == []
        async with gw.events(filter=EventFilter(event_type="timeout"), namespace="ignored") as flt:
            gw._events.publish(StreamEvent("timeout", T, "elsewhere", "t9"))
            assert [e.namespace for e in drain(flt)] == ["elsewhere"]


# ----------------------------------------------------------------------------- sanitisation (scenario 62)


async def test_outcomes_on_the_stream_are_sanitised() -> None:
    rules = """
rules:
  - {name: to-sms, condition: {field: action.action_type, eq: reroute-me}, action: {type: reroute, target_provider: sms}}
  - {name: ask, condition: {field: action.action_type, eq: ask}, action: {type: request_approval, notify_provider: sms}}
"""
    async with gateway(rules) as gw:
        sub = gw.events(event_type="action_dispatched")
        executed = await gw.dispatch(action())
        rerouted = await gw.dispatch(action(action_type="reroute-me"))
        pending = await gw.dispatch(action(action_type="ask"))
        assert isinstance(executed, Executed) and executed.response.body == {"secret": "body"}
        assert isinstance(rerouted, Rerouted) and isinstance(pending, PendingApproval)
        assert pending.approve_url.startswith("http")
        wires = [e.data["outcome"] for e in drain(sub)]
        assert wires[0] == {"Executed": {"status": "success", "body": None, "headers": {}}}
        assert wires[1]["Rerouted"]["response"] == {"status": "success", "body": None, "headers": {}}
        assert wires[2]["PendingApproval"]["approve_url"] == "[redacted]"
        assert wires[2]["PendingApproval"]["reject_url"] == "[redacted]"
        assert wires[2]["PendingApproval"]["approval_id"] == pending.approval_id


async def test_dispatch_event_shares_the_audit_record_id() -> None:
    audit = MemoryAuditStore()
    async with gateway(audit=audit) as gw:
        sub = gw.events()
        sent = action()
        await gw.dispatch(sent)
        record = await audit.get_by_action_id(sent.id)
        event = sub.get_nowait()
        assert record is not None and event is not None and event.id == record.id


async def test_dry_runs_publish_nothing() -> None:
    async with gateway() as gw:
        sub = gw.events()
        await gw.dispatch(action(), dry_run=True)
        assert drain(sub) == []


# ----------------------------------------------------------------------------- slow subscribers


async def test_slow_subscriber_gets_one_lagged_marker_and_dispatch_never_blocks() -> None:
    async with gateway(config={"event_buffer_size": 3}) as gw:
        slow = gw.events()
        fast_seen: list[str] = []

        async with anyio.create_task_group() as tg:
            fast = gw.events()

            async def reader() -> None:
                async for event in fast:
                    fast_seen.append(event.type)
                    if len(fast_seen) == 10:
                        return

            tg.start_soon(reader)
            with anyio.fail_after(5):  # would hang if publishing waited for the slow reader
                for i in range(10):
                    await gw.dispatch(action(payload={"i": i}))
                    await anyio.sleep(0)
        assert fast_seen == ["action_dispatched"] * 10
        first = slow.get_nowait()
        assert first is not None and first.type == "lagged" and first.data == {"skipped": 7}
        assert first.to_dict()["skipped"] == 7
        rest = drain(slow)
        assert [e.data["outcome"]["Executed"]["status"] for e in rest] == ["success"] * 3
        assert len(rest) == 3 and not any(e.is_lagged for e in rest)
        await gw.dispatch(action())
        assert [e.type for e in drain(slow)] == ["action_dispatched"]  # no stale lag count


async def test_async_iteration_waits_for_events_and_stops_on_close() -> None:
    bus = EventBus(8, now=lambda: T)
    sub = bus.subscribe(EventFilter(event_type="timeout"))
    got: list[str] = []

    async def consume() -> None:
        async for event in sub:
            got.append(event.namespace)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0)
        bus.publish(StreamEvent("timeout", T, "a"))
        bus.publish(StreamEvent("other", T, "b"))
        bus.publish(StreamEvent("timeout", T, "c"))
        await anyio.sleep(0.01)
        await sub.aclose()
    assert got == ["a", "c"]
    assert not bus.has_subscribers


# ----------------------------------------------------------------------------- entity subscriptions (§10.3)


async def test_entity_validation() -> None:
    async with gateway() as gw:
        with pytest.raises(UsageError, match="entity_type must be one of"):
            await gw.subscribe_entity("rule", "x")
        with pytest.raises(UsageError, match="between 1 and 256 characters"):
            await gw.subscribe_entity("action", "")
        with pytest.raises(UsageError, match="between 1 and 256 characters"):
            await gw.subscribe_entity("action", "é" * 129)  # 258 bytes
        with pytest.raises(UsageError, match="invalid characters"):
            await gw.subscribe_entity("action", "a/b")
        with pytest.raises(UsageError, match="namespace query parameter is required"):
            await gw.subscribe_entity("chain", "c1")
        with pytest.raises(UsageError, match="tenant query parameter is required"):
            await gw.subscribe_entity("group", "g1", namespace="ns")
        sub = await gw.subscribe_entity("action", "ünïcode-ok_1.2")
        await sub.aclose()


async def test_action_subscription_replays_the_audit_record_then_goes_live() -> None:
    audit = MemoryAuditStore()
    async with gateway(audit=audit) as gw:
        sent = action()
        await gw.dispatch(sent)
        sub = await gw.subscribe_entity("action", sent.id)
        history = sub.get_nowait()
        assert history is not None and history.type == "action_dispatched"
        assert history.data == {"outcome": {"Executed": {"status": "success", "body": None, "headers": {}}},
                                "provider": "email"}
        record = await audit.get_by_action_id(sent.id)
        assert record is not None and history.id == record.id
        assert sub.get_nowait() is None
        await gw.dispatch(sent)  # same id again: live
        gw._events.publish(chain_event("chain_completed", "C", action_id=sent.id, status="completed"))
        assert [e.type for e in drain(sub)] == ["action_dispatched", "chain_completed"]  # still open
        await sub.aclose()
        other = await gw.subscribe_entity("action", sent.id, tenant="t2")  # other tenant: no history
        assert other.get_nowait() is None
        no_history = await gw.subscribe_entity("action", sent.id, include_history=False)
        assert no_history.get_nowait() is None


async def test_chain_subscription_catch_up_then_end_when_already_terminal() -> None:
    async with gateway() as gw:
        async def chain_history(ns: str, tenant: str, ident: str) -> list[StreamEvent] | None:
            if ident != "C1":
                return None
            return [
                StreamEvent("chain_step_completed", T, ns, tenant, None, None,
                            {"chain_id": ident, "step_name": "step0", "step_index": 0, "success": True,
                             "next_step": "step1"}),
                StreamEvent("chain_step_completed", T, ns, tenant, None, None,
                            {"chain_id": ident, "step_name": "step1", "step_index": 1, "success": True}),
                StreamEvent("chain_completed", T, ns, tenant, None, None, {"chain_id": ident, "status": "completed"}),
            ]

        gw._entity_catchup["chain"] = chain_history
        sub = await gw.subscribe_entity("chain", "C1", namespace="ns", tenant="t1")
        seen = [event async for event in sub]  # ends on its own
        assert [e.type for e in seen] == ["chain_step_completed", "chain_step_completed", "chain_completed",
                                          "subscription_end"]
        assert seen[0].data["next_step"] == "step1"
        assert seen[-1].data == {"reason": "chain_completed", "entity_type": "chain", "entity_id": "C1"}
        with pytest.raises(EntityNotFoundError):
            await gw.subscribe_entity("chain", "missing", namespace="ns", tenant="t1")
        assert not gw._events.has_subscribers  # nothing leaked


async def test_live_terminal_event_ends_group_and_chain_subscriptions() -> None:
    async with gateway() as gw:
        # No history: these entities exist only as the events published below.
        group = await gw.subscribe_entity("group", "G", namespace="ns", tenant="t1", include_history=False)
        chain = await gw.subscribe_entity("chain", "C", namespace="ns", tenant="t1", include_history=False)
        gw._events.publish(group_event("group_event_added", "G", group_key="k", event_count=1))
        gw._events.publish(group_event("group_event_added", "OTHER", group_key="k2", event_count=1))
        gw._events.publish(group_event("group_resolved", "G", group_key="k"))
        gw._events.publish(chain_event("chain_completed", "C", status="failed"))
        got = [e async for e in group]
        assert [e.type for e in got] == ["group_event_added", "group_resolved", "subscription_end"]
        assert got[-1].data["reason"] == "group_resolved"
        got = [e async for e in chain]
        assert [e.type for e in got] == ["chain_completed", "subscription_end"]
        assert got[-1].data["reason"] == "chain_failed"
        assert not gw._events.has_subscribers  # ending unsubscribed them


async def test_reading_the_end_without_waiting_also_closes() -> None:
    async with gateway() as gw:
        sub = await gw.subscribe_entity("group", "G", namespace="ns", tenant="t1", include_history=False)
        gw._events.publish(group_event("group_resolved", "G", group_key="k"))
        assert [e.type for e in drain(sub)] == ["group_resolved", "subscription_end"]
        assert not gw._events.has_subscribers
        gw._events.publish(group_event("group_resolved", "G", group_key="k"))
        assert sub.get_nowait() is None


async def test_group_named_by_key_follows_its_group_id() -> None:
    async with gateway() as gw:
        async def group_history(ns: str, tenant: str, ident: str) -> list[StreamEvent] | None:
            if ident != "k" * 64:
                return None
            return [group_event("group_event_added", "G1", group_key=ident, event_count=2)]

        gw._entity_catchup["group"] = group_history
        sub = await gw.subscribe_entity("group", "k" * 64, namespace="ns", tenant="t1")
        gw._events.publish(group_event("group_flushed", "G1", event_count=2))
        gw._events.publish(group_event("group_flushed", "G2", event_count=1))
        assert [(e.type, e.group_id) for e in drain(sub)] == [("group_event_added", "G1"), ("group_flushed", "G1")]
        await sub.aclose()


def test_blocking_twin_events_and_entity_subscriptions() -> None:
    with Gateway(providers=[RecordingProvider("email")], background=False) as gw:
        sub = gw.events(chain_id="X", namespace="ns")
        entity = gw.subscribe_entity("group", "G", namespace="ns", tenant="t1", include_history=False)
        gw.async_gateway._events.publish(chain_event("chain_advanced", "X"))
        gw.async_gateway._events.publish(group_event("group_resolved", "G", group_key="k"))
        event = sub.get(timeout=1)
        assert event is not None and event.type == "chain_advanced"
        assert sub.get(timeout=0.01) is None
        assert [e.type for e in entity] == ["group_resolved", "subscription_end"]
        sub.close()
