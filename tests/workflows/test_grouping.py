"""Event grouping: the group verdict, notifications, manual flush, queries, restarts.

Ports workflows.md §14 scenarios 47 and 48 (with DECISIONS D16's destination)
and checks the group notification shape of §6.3. Timing edge cases live in
``test_grouping_timing.py``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from acteon import AsyncGateway, GroupNotFound, GroupNotPending
from acteon._timefmt import parse_rfc3339
from acteon.audit import AuditQuery
from acteon.outcomes import DryRun, Executed, Grouped
from acteon.rules import load_rules
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing import FakeClock, RecordingProvider
from acteon.workflows._fields import compute_fingerprint, group_key
from tests.workflows._env import T0, Env, alert

pytestmark = pytest.mark.anyio

BATCH = """
rules:
  - name: batch
    condition: {field: action.action_type, eq: alert}
    action: {type: group, group_by: [metadata.cluster, metadata.severity], group_wait_seconds: 60}
"""


def group_rule(extra: str = "", condition: str = "{field: action.action_type, eq: alert}",
               group_by: str = "[metadata.cluster, metadata.severity]") -> str:
    return f"""
rules:
  - name: batch
    condition: {condition}
    action: {{type: group, group_by: {group_by}, group_wait_seconds: 60{extra}}}
"""


# ----------------------------------------------------------------------------- scenario 47


async def test_batching_three_alerts_into_one_notification() -> None:
    async with Env(BATCH) as env:
        outcomes = []
        payloads = [{"i": 0}, {"i": 1}, {"i": 2}]
        for p in payloads:
            outcomes.append(await env.gw.dispatch(alert(payload=p)))
            env.clock.advance(5)
        assert all(isinstance(o, Grouped) for o in outcomes)
        grouped = [o for o in outcomes if isinstance(o, Grouped)]
        assert {o.group_id for o in grouped} == {grouped[0].group_id}
        assert [o.group_size for o in grouped] == [1, 2, 3]
        assert {o.notify_at for o in grouped} == {parse_rfc3339(T0) + timedelta(seconds=60)}
        assert env.webhook.actions == []  # grouped actions are not executed

        assert (await env.advance(44))["group_flush"] == 0  # T0+59 s
        assert env.notifications() == []
        assert (await env.advance(1))["group_flush"] == 1  # T0+60 s
        [note] = env.notifications()
        assert (note.namespace, note.tenant, note.provider) == ("ns", "t1", "webhook")  # D16, not default/default
        body = note.payload
        assert body["group_id"] == grouped[0].group_id
        assert body["event_count"] == 3
        assert body["events"] == payloads
        assert body["labels"] == {"metadata.cluster": "prod", "metadata.severity": "critical"}
        assert body["flushed_at"] == "2026-01-15T12:01:00Z"
        assert body["_group_dispatch"] is True
        assert body["group_key"] == group_key(alert(), ["metadata.cluster", "metadata.severity"])[0]

        assert (await env.advance(30))["group_flush"] == 0  # sent once only


async def test_grouped_dispatch_and_notification_are_audited() -> None:
    async with Env(BATCH) as env:
        action = alert()
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Grouped)
        record = await env.gw.audit_get(action.id)
        assert record is not None
        assert (record.verdict, record.outcome, record.matched_rule) == ("group", "grouped", "batch")
        assert record.outcome_details == {
            "group_id": outcome.group_id, "group_size": 1, "notify_at": "2026-01-15T12:01:00Z",
        }
        await env.advance(60)
        page = await env.gw.audit_query(AuditQuery(action_type="group_notification"))
        assert [r.outcome for r in page.records] == ["executed"]
        assert page.records[0].verdict == "allow"


# ----------------------------------------------------------------------------- scenario 48 and keys


def test_group_key_vector_and_labels() -> None:
    key, labels = group_key(alert(), ["metadata.cluster", "metadata.severity"])
    expected = "ns:t1:metadata.cluster=prod;metadata.severity=critical;"
    assert key == hashlib.sha256(expected.encode()).hexdigest()
    assert labels == {"metadata.cluster": "prod", "metadata.severity": "critical"}


def test_absent_fields_are_skipped_in_the_key() -> None:
    lacking = alert(metadata={"cluster": "prod"})
    both = group_key(lacking, ["metadata.cluster", "metadata.severity"])
    alone = group_key(lacking, ["metadata.cluster"])
    assert both == alone
    assert both[1] == {"metadata.cluster": "prod"}


def test_field_values_of_every_kind() -> None:
    action = alert(
        status="firing",
        payload={"n": 1.0, "big": 1e21, "tiny": 1.5e-7, "ok": True, "none": None, "obj": {"b": 2, "a": [1, 2.5]},
                 "items": ["x", "y"]},
    )
    paths = ["namespace", "tenant", "provider", "action_type", "status", "payload.n", "payload.big", "payload.tiny",
             "payload.ok", "payload.none", "payload.obj", "payload.items.1", "payload.items.9", "id", "nope"]
    _, labels = group_key(action, paths)
    assert labels == {
        "namespace": "ns", "tenant": "t1", "provider": "webhook", "action_type": "alert", "status": "firing",
        "payload.n": "1.0", "payload.big": "1e21", "payload.tiny": "1.5e-7", "payload.ok": "true",
        "payload.obj": '{"a":[1,2.5],"b":2}', "payload.items.1": "y",
    }


async def test_alerts_lacking_a_label_group_together_and_tenants_never_share() -> None:
    async with Env(BATCH) as env:
        a = await env.gw.dispatch(alert(metadata={"cluster": "prod"}))
        b = await env.gw.dispatch(alert(metadata={"cluster": "prod"}))
        c = await env.gw.dispatch(alert())
        other = await env.gw.dispatch(alert(tenant="t2", metadata={"cluster": "prod"}))
        assert isinstance(a, Grouped) and isinstance(b, Grouped)
        assert isinstance(c, Grouped) and isinstance(other, Grouped)
        assert a.group_id == b.group_id and b.group_size == 2
        assert c.group_id != a.group_id
        assert other.group_id != a.group_id and other.group_size == 1
        await env.advance(60)
        notes = env.notifications()
        assert sorted((n.tenant, n.payload["event_count"]) for n in notes) == [("t1", 1), ("t1", 2), ("t2", 1)]
        lacking = next(n for n in notes if n.payload["event_count"] == 2)
        assert lacking.payload["labels"] == {"metadata.cluster": "prod"}


async def test_event_fingerprints_default_to_the_group_by_fields() -> None:
    async with Env(BATCH) as env:
        await env.gw.dispatch(alert())
        await env.gw.dispatch(alert(fingerprint="given-fp"))
        [summary] = await env.gw.list_groups()
        detail = await env.gw.get_group(summary["group_key"], "ns", "t1")
        assert detail is not None
        computed = compute_fingerprint(alert(), ["metadata.cluster", "metadata.severity"])
        assert detail["event_fingerprints"] == [computed, "given-fp"]


# ----------------------------------------------------------------------------- destination


async def test_notification_goes_to_the_provider_the_rule_names() -> None:
    async with Env(group_rule(", notify_provider: slack")) as env:
        await env.gw.dispatch(alert())
        await env.advance(60)
        assert env.notifications() == []
        [note] = env.notifications("slack")
        assert note.provider == "slack" and note.namespace == "ns" and note.tenant == "t1"


def test_yaml_notify_provider_is_a_verdict_param_only_when_given() -> None:
    named = load_rules(group_rule(", notify_provider: slack")).evaluate(alert())
    plain = load_rules(BATCH).evaluate(alert())
    assert named.params["notify_provider"] == "slack"
    assert "notify_provider" not in plain.params


async def test_a_rule_matching_its_own_notification_does_not_regroup_it() -> None:
    rules = group_rule(condition="{all: []}")  # matches everything, the notification included
    async with Env(rules) as env:
        await env.gw.dispatch(alert())
        await env.advance(60)
        [note] = env.notifications()
        assert note.payload["event_count"] == 1
        assert await env.gw.list_groups(state="pending") == []
        record = await env.gw.audit_get(note.id)
        assert record is not None and (record.verdict, record.outcome) == ("group", "executed")


async def test_an_outside_action_with_the_payload_marker_is_still_grouped() -> None:
    rules = group_rule(condition="{all: []}")
    async with Env(rules) as env:
        forged = alert(action_type="group_notification", payload={"_group_dispatch": True})
        assert isinstance(await env.gw.dispatch(forged), Grouped)
        assert env.webhook.actions == []


# ----------------------------------------------------------------------------- idempotency, dry run


async def test_a_retried_action_is_added_once() -> None:
    async with Env(BATCH) as env:
        action = alert()
        first = await env.gw.dispatch(action)
        again = await env.gw.dispatch(action)
        assert isinstance(first, Grouped) and isinstance(again, Grouped)
        assert first.group_size == again.group_size == 1


async def test_dry_run_creates_no_group() -> None:
    async with Env(BATCH) as env:
        assert await env.gw.dispatch(alert(), dry_run=True) == DryRun("group", "batch", "webhook")
        assert await env.gw.list_groups() == []


# ----------------------------------------------------------------------------- manual flush and queries


async def test_manual_flush_sends_the_notification_once() -> None:
    async with Env(BATCH) as env:
        outcome = await env.gw.dispatch(alert())
        assert isinstance(outcome, Grouped)
        [summary] = await env.gw.list_groups()
        result = await env.gw.flush_group(summary["group_key"])
        assert result["status"] == "flushed" and result["event_count"] == 1
        assert result["group_id"] == outcome.group_id
        assert isinstance(result["outcome"], Executed)
        assert len(env.notifications()) == 1
        with pytest.raises(GroupNotPending, match="group already notified or not in pending state"):
            await env.gw.flush_group(summary["group_key"], "ns", "t1")
        await env.advance(60)
        await env.advance(300)
        assert len(env.notifications()) == 1  # the due tick does not send it again


async def test_flush_by_group_id_and_unknown_groups() -> None:
    async with Env(BATCH) as env:
        outcome = await env.gw.dispatch(alert())
        assert isinstance(outcome, Grouped)
        result = await env.gw.flush_group(outcome.group_id, "ns", "t1")
        assert result["group_id"] == outcome.group_id
        with pytest.raises(GroupNotFound, match="group not found: nope"):
            await env.gw.flush_group("nope")
        with pytest.raises(GroupNotFound):
            await env.gw.flush_group(result["group_key"], "ns", "other-tenant")
        assert await env.gw.get_group("nope") is None


async def test_list_and_get_groups() -> None:
    async with Env(BATCH) as env:
        await env.gw.dispatch(alert(payload={"a": 1}))
        env.clock.advance(1)
        await env.gw.dispatch(alert(tenant="t2"))
        groups = await env.gw.list_groups()
        assert [(g["tenant"], g["event_count"], g["state"]) for g in groups] == [("t1", 1, "pending"), ("t2", 1, "pending")]
        assert set(groups[0]) == {"group_id", "group_key", "namespace", "tenant", "event_count", "state",
                                  "notify_at", "created_at"}
        assert groups[0]["notify_at"] == "2026-01-15T12:01:00Z"
        assert [g["tenant"] for g in await env.gw.list_groups("ns", "t2")] == ["t2"]
        assert await env.gw.list_groups(state="notified") == []
        assert len(await env.gw.list_groups(limit=1)) == 1
        detail = await env.gw.get_group(groups[0]["group_key"])
        assert detail is not None
        assert detail["group"] == groups[0]
        assert detail["labels"] == {"metadata.cluster": "prod", "metadata.severity": "critical"}
        assert [e["payload"] for e in detail["events"]] == [{"a": 1}]
        assert detail["events"][0]["received_at"] == T0
        await env.advance(60)
        assert [g["state"] for g in await env.gw.list_groups("ns", "t1")] == ["notified"]


async def test_list_groups_rejects_bad_arguments() -> None:
    from acteon import UsageError

    async with Env(BATCH) as env:
        with pytest.raises(UsageError, match="state"):
            await env.gw.list_groups(state="flushed")
        with pytest.raises(UsageError, match="limit"):
            await env.gw.list_groups(limit=-1)


# ----------------------------------------------------------------------------- stream events


async def test_group_events_on_the_stream() -> None:
    async with Env(BATCH) as env:
        sub = env.gw.events()
        outcome = await env.gw.dispatch(alert())
        assert isinstance(outcome, Grouped)
        await env.advance(60)
        await env.advance(300)  # nothing new at the next tick: the group ends
        seen = []
        while (event := sub.get_nowait()) is not None:
            seen.append(event)
        kinds = [e.type for e in seen]
        assert kinds[:2] == ["group_event_added", "action_dispatched"]
        added = seen[0]
        assert added.to_dict()["event_count"] == 1 and added.group_id == outcome.group_id
        assert added.action_type == "alert"
        flushed = next(e for e in seen if e.type == "group_flushed")
        assert flushed.to_dict()["event_count"] == 1 and flushed.group_id == outcome.group_id
        assert (flushed.namespace, flushed.tenant) == ("ns", "t1")
        resolved = next(e for e in seen if e.type == "group_resolved")
        assert resolved.group_id == outcome.group_id
        assert resolved.to_dict()["group_key"] == group_key(alert(), ["metadata.cluster", "metadata.severity"])[0]
        assert kinds.index("group_flushed") < kinds.index("group_resolved")
        await sub.aclose()


# ----------------------------------------------------------------------------- restarts


async def test_groups_survive_a_restart_and_are_sent_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    clock = FakeClock(T0)

    def gateway(recorder: RecordingProvider) -> AsyncGateway:
        return AsyncGateway(rules=BATCH, state=SQLiteStateStore(path), providers=[recorder], clock=clock,
                            background=False)

    first = RecordingProvider("webhook")
    async with gateway(first) as gw:
        for i in range(3):
            assert isinstance(await gw.dispatch(alert(payload={"i": i})), Grouped)
    clock.advance(61)
    second = RecordingProvider("webhook")
    async with gateway(second) as gw:
        assert (await gw.tick())["group_flush"] == 1
        assert (await gw.tick())["group_flush"] == 0
    assert [a.payload["event_count"] for a in second.actions] == [3]
    third = RecordingProvider("webhook")
    clock.advance(600)
    async with gateway(third) as gw:
        await gw.tick()
        await gw.tick()
        assert await gw.list_groups() == []
    assert first.actions == [] and third.actions == []  # flushed groups never re-fire


def test_sync_gateway_twins() -> None:
    from acteon import Gateway

    clock = FakeClock(T0)
    recorder = RecordingProvider("webhook")
    with Gateway(rules=BATCH, providers=[recorder], clock=clock, background=False) as gw:
        outcome = gw.dispatch(alert())
        assert isinstance(outcome, Grouped)
        [summary] = gw.list_groups()
        assert gw.get_group(summary["group_key"]) is not None
        assert gw.flush_group(summary["group_key"])["event_count"] == 1
    assert len(recorder.actions) == 1



async def test_group_entity_subscription_catches_up_then_follows() -> None:
    from acteon import EntityNotFoundError

    async with Env(BATCH) as env:
        outcome = await env.gw.dispatch(alert())
        await env.gw.dispatch(alert())
        assert isinstance(outcome, Grouped)
        sub = await env.gw.subscribe_entity("group", outcome.group_id, namespace="ns", tenant="t1")
        first = await sub.__anext__()
        assert first.type == "group_event_added" and first.to_dict()["event_count"] == 2
        await env.advance(60)
        assert (await sub.__anext__()).type == "group_flushed"
        await env.advance(300)  # nothing new: the group ends
        assert (await sub.__anext__()).type == "group_resolved"
        await sub.aclose()
        with pytest.raises(EntityNotFoundError):
            await env.gw.subscribe_entity("group", "missing", namespace="ns", tenant="t1")
