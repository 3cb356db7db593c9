"""Scheduled actions: the schedule verdict, dispatch_at and delivery (core-pipeline.md §11, §22 53-58, D11/D12)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from acteon import Action, ConfigurationError, Gateway, ProviderNotFoundError
from acteon.outcomes import Executed, QuotaExceeded, Scheduled
from acteon.scheduling import ScheduledAction, dispatch_origin
from acteon.scheduling._origin import trusted_dispatch
from acteon.state._base import StateStore
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing import FakeClock
from tests.scheduling.conftest import DELAY_60, NS, START, TENANT, Env, make_action, rule, rules_text

pytestmark = pytest.mark.anyio

DATA = f"{NS}:{TENANT}:scheduled_action:"
PENDING = f"{NS}:{TENANT}:pending_scheduled:"


# ----------------------------------------------------------------------------- acceptance (53-57)


async def test_schedule_verdict_returns_scheduled() -> None:  # scenario 53
    async with Env(DELAY_60) as env:
        action = make_action()
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Scheduled)
        assert outcome.action_id and outcome.action_id != action.id
        assert outcome.scheduled_for == env.clock.now() + timedelta(seconds=60)
        assert outcome.to_wire() == {"Scheduled": {"action_id": outcome.action_id,
                                                   "scheduled_for": "2026-01-15T12:01:00Z"}}
        assert env.counters("dispatched", "scheduled", "executed") == {
            "dispatched": 1, "scheduled": 1, "executed": 0}
        assert env.email.actions == []
        record = await env.gw.audit_get(action.id)
        assert record is not None
        assert (record.verdict, record.outcome, record.matched_rule) == ("schedule", "scheduled", "delay-send")


async def test_stored_keys_and_json() -> None:  # scenario 54
    text = rules_text(rule("delay-send", "{type: schedule, delay_seconds: 120}"))
    async with Env(text) as env:
        action = make_action()
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Scheduled)
        raw = await env.state.get(DATA + outcome.action_id)
        assert raw is not None
        data = json.loads(raw)
        assert data == {
            "action_id": outcome.action_id,
            "action": action.to_wire(),
            "scheduled_for": "2026-01-15T12:02:00Z",
            "created_at": "2026-01-15T12:00:00Z",
            "attempts": 0,
        }
        due_ms = int((env.clock.time() + 120) * 1000)
        assert await env.state.get(PENDING + outcome.action_id) == str(due_ms)
        assert await env.state.get_expired_timeouts(due_ms - 1) == []
        assert await env.state.get_expired_timeouts(due_ms) == [PENDING + outcome.action_id]


@pytest.mark.parametrize("delay,error", [(0, "scheduled delay must be at least 1 second"),
                                         (691200, "scheduled delay 691200s exceeds maximum of 604800s (7 days)")])
async def test_delay_bounds(delay: int, error: str) -> None:  # scenario 55
    text = rules_text(rule("delay-send", f"{{type: schedule, delay_seconds: {delay}}}"))
    async with Env(text) as env:
        action = make_action()
        with pytest.raises(ConfigurationError) as info:
            await env.gw.dispatch(action)
        assert str(info.value) == f"configuration error: {error}"
        assert env.counters("scheduled") == {"scheduled": 0}
        record = await env.gw.audit_get(action.id)
        assert record is not None and record.outcome == "failed"


async def test_seven_days_exactly_is_accepted() -> None:  # scenario 55
    text = rules_text(rule("delay-send", "{type: schedule, delay_seconds: 604800}"))
    async with Env(text) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        assert outcome.scheduled_for == env.clock.now() + timedelta(days=7)


async def test_outside_marker_is_ignored() -> None:  # scenario 56, adapted to D11
    async with Env(DELAY_60) as env:
        marked = make_action(payload={"to": "x", "_scheduled_dispatch": True}, metadata={"_scheduled_dispatch": "true"})
        outcome = await env.gw.dispatch(marked)
        assert isinstance(outcome, Scheduled)  # neither an error nor a bypass of the rule
        assert env.email.actions == []
        await env.advance(60)
        assert len(env.email.actions) == 1  # delivered once, not re-scheduled


async def test_many_schedules() -> None:  # scenario 57
    async with Env(DELAY_60) as env:
        sub = env.gw.events(event_type="action_dispatched")
        ids = set()
        for _ in range(10):
            outcome = await env.gw.dispatch(make_action())
            assert isinstance(outcome, Scheduled)
            ids.add(outcome.action_id)
        assert len(ids) == 10
        assert env.counters("scheduled", "executed", "suppressed") == {"scheduled": 10, "executed": 0, "suppressed": 0}
        event = sub.get_nowait()
        assert event is not None and event.outcome_kind == "scheduled"
        assert "Scheduled" in event.data["outcome"]
        await sub.aclose()


# ----------------------------------------------------------------------------- delivery (58, D11)


async def test_delivery_when_due() -> None:  # scenario 58, adapted: pending removed after delivery
    async with Env(DELAY_60) as env:
        due_events = env.gw.events(event_type="scheduled_action_due")
        action = make_action()
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Scheduled)
        summary = await env.advance(59)
        assert summary["scheduled_actions"] == 0 and env.email.actions == []
        assert due_events.get_nowait() is None
        summary = await env.advance(1)
        assert summary["scheduled_actions"] == 1
        [delivered] = env.email.actions
        assert delivered.id == action.id
        assert delivered.payload == {"to": "user@example.com", "_scheduled_dispatch": True}
        event = due_events.get_nowait()
        assert event is not None
        assert (event.namespace, event.tenant, event.action_id) == (NS, TENANT, outcome.action_id)
        assert event.to_dict()["type"] == "scheduled_action_due"
        for key in (DATA + outcome.action_id, PENDING + outcome.action_id, DATA + outcome.action_id + ":claim"):
            assert await env.state.get(key) is None
        assert await env.state.get_expired_timeouts(int(env.clock.time() * 1000) + 10**9) == []
        # the delivery ran the full pipeline and was audited as its own dispatch
        assert env.counters("dispatched", "scheduled", "executed") == {"dispatched": 2, "scheduled": 1, "executed": 1}
        records = (await env.gw.audit_query({"action_id": action.id})).records
        assert sorted(r.outcome for r in records) == ["executed", "scheduled"]
        assert await env.advance(3600) and len(env.email.actions) == 1
        await due_events.aclose()


async def test_delivery_runs_the_rules_again() -> None:
    text = rules_text(
        rule("delay-send", "{type: schedule, delay_seconds: 60}", priority=10),
        rule("block-late", "{type: suppress}", condition="{field: time.minute, gte: 1}", priority=1),
    )
    async with Env(text) as env:
        assert isinstance(await env.gw.dispatch(make_action()), Scheduled)  # 12:00: not blocked yet
        await env.advance(60)  # 12:01 at delivery: the suppress rule now wins
        assert env.email.actions == []
        assert env.counters("suppressed", "scheduled") == {"suppressed": 1, "scheduled": 1}


async def test_non_object_payload_is_delivered_once() -> None:
    # Upstream could not mark a list payload and re-scheduled it forever.
    async with Env(DELAY_60) as env:
        outcome = await env.gw.dispatch(make_action(payload=[1, 2]))
        assert isinstance(outcome, Scheduled)
        await env.advance(60)
        await env.advance(60)
        assert [a.payload for a in env.email.actions] == [[1, 2]]
        assert env.counters("scheduled") == {"scheduled": 1}


async def test_failed_provider_outcome_counts_as_delivered() -> None:
    async with Env(DELAY_60, providers=[]) as env:  # no provider: a Failed outcome, not an exception
        await env.gw.dispatch(make_action())
        assert (await env.advance(60))["scheduled_actions"] == 1
        assert await env.gw.list_scheduled(NS, TENANT) == []
        assert env.counters("failed") == {"failed": 1}


# ----------------------------------------------------------------------------- dispatch_at


async def test_dispatch_at_in_the_future() -> None:
    async with Env() as env:
        action = make_action(dispatch_at="2026-01-15T12:05:00Z")
        outcome = await env.gw.dispatch(action)
        assert outcome == Scheduled(action.id, action.dispatch_at)
        entry = await env.gw.get_scheduled(NS, TENANT, action.id)
        assert entry is not None and entry.action == action
        assert env.counters("scheduled", "executed") == {"scheduled": 1, "executed": 0}
        record = await env.gw.audit_get(action.id)
        assert record is not None and (record.verdict, record.outcome) == ("schedule", "scheduled")
        await env.advance(299)
        assert env.email.actions == []
        await env.advance(1)
        assert [a.id for a in env.email.actions] == [action.id]


async def test_dispatch_at_is_idempotent_per_action() -> None:
    async with Env() as env:
        action = make_action(dispatch_at="2026-01-15T12:05:00Z")
        first = await env.gw.dispatch(action)
        second = await env.gw.dispatch(action)
        assert first == second
        assert len(await env.gw.list_scheduled(NS, TENANT)) == 1
        assert env.counters("scheduled") == {"scheduled": 1}
        await env.advance(300)
        assert len(env.email.actions) == 1


@pytest.mark.parametrize("when", ["2026-01-15T11:00:00Z", START])
async def test_dispatch_at_now_or_past_dispatches_at_once(when: str) -> None:
    async with Env() as env:
        outcome = await env.gw.dispatch(make_action(dispatch_at=when))
        assert isinstance(outcome, Executed)
        assert env.counters("scheduled") == {"scheduled": 0}


async def test_dispatch_at_rules_run_at_delivery() -> None:
    text = rules_text(rule("block", "{type: suppress}"))
    async with Env(text) as env:
        outcome = await env.gw.dispatch(make_action(dispatch_at="2026-01-15T12:00:10Z"))
        assert isinstance(outcome, Scheduled)  # accepted; rules have not run yet
        await env.advance(10)
        assert env.counters("suppressed") == {"suppressed": 1}
        assert env.email.actions == []


async def test_dispatch_at_with_a_schedule_rule_is_delivered_not_delayed_again() -> None:
    async with Env(DELAY_60) as env:
        action = make_action(dispatch_at="2026-01-15T12:00:10Z")
        assert await env.gw.dispatch(action) == Scheduled(action.id, action.dispatch_at)
        await env.advance(10)
        assert [a.id for a in env.email.actions] == [action.id]
        assert env.counters("scheduled") == {"scheduled": 1}


async def test_dispatch_at_beyond_seven_days_is_refused() -> None:
    async with Env() as env:
        with pytest.raises(ConfigurationError, match="exceeds maximum of 604800s"):
            await env.gw.dispatch(make_action(dispatch_at="2026-01-23T12:00:00Z"))


async def test_dry_run_of_dispatch_at_stores_nothing() -> None:
    async with Env() as env:
        await env.gw.dispatch(make_action(dispatch_at="2026-01-15T12:05:00Z"), dry_run=True)
        assert await env.gw.list_scheduled(NS, TENANT) == []


# ----------------------------------------------------------------------------- retries and dead letters


REROUTE_DELIVERIES = rules_text(
    rule("broken", "{type: reroute, target_provider: nowhere}",
         condition="{field: action.payload._scheduled_dispatch, eq: true}", priority=1),
    rule("delay-send", "{type: schedule, delay_seconds: 60}", priority=5),
)


async def test_failed_delivery_is_retried_with_backoff_then_dead_lettered() -> None:
    async with Env(REROUTE_DELIVERIES, config={"executor": {"max_retries": 0, "dlq_enabled": True}}) as env:
        failures = env.gw.events(event_type="scheduled_action_failed")
        action = make_action()
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Scheduled)
        sid = outcome.action_id
        await env.advance(60)  # attempt 1 fails: next try 30 s later
        entry = await env.gw.get_scheduled(NS, TENANT, sid)
        assert entry is not None and entry.attempts == 1
        assert entry.last_error == "provider not found: nowhere"
        due = int(env.clock.time() * 1000) + 30_000
        assert await env.state.get(PENDING + sid) == str(due)
        await env.advance(29)
        assert (await env.gw.get_scheduled(NS, TENANT, sid)).attempts == 1  # type: ignore[union-attr]
        for backoff, attempts in ((1, 2), (60, 3), (120, 4)):
            await env.advance(backoff)
            assert (await env.gw.get_scheduled(NS, TENANT, sid)).attempts == attempts  # type: ignore[union-attr]
        assert failures.get_nowait() is None
        await env.advance(240)  # attempt 5: dead-lettered
        assert await env.gw.get_scheduled(NS, TENANT, sid) is None
        assert await env.state.get(PENDING + sid) is None
        [letter] = env.gw.dlq_list()
        assert letter.action.id == action.id and letter.attempts == 5
        assert letter.error == "scheduled delivery failed after 5 attempts: provider not found: nowhere"
        event = failures.get_nowait()
        assert event is not None and event.action_id == sid and event.data["attempts"] == 5
        records = (await env.gw.audit_query({"action_id": action.id, "limit": 50})).records
        dead = [r for r in records if "after 5 attempts" in str(r.outcome_details.get("message"))]
        assert len(dead) == 1 and dead[0].verdict == "schedule" and dead[0].outcome == "failed"
        await env.advance(10_000)
        assert env.email.actions == []
        await failures.aclose()


async def test_delivery_succeeds_after_the_cause_is_fixed() -> None:
    async with Env(REROUTE_DELIVERIES) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        await env.advance(60)
        await env.advance(30)
        assert (await env.gw.get_scheduled(NS, TENANT, outcome.action_id)).attempts == 2  # type: ignore[union-attr]
        env.gw.reload_rules(DELAY_60)
        await env.advance(60)
        assert len(env.email.actions) == 1
        assert await env.gw.get_scheduled(NS, TENANT, outcome.action_id) is None


async def test_crashed_delivery_is_retried_after_its_claim_expires() -> None:
    async with Env(DELAY_60, scheduling={"claim_ttl_seconds": 120}) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        env.clock.advance(60)
        # Another process claimed it when it came due and died before finishing.
        assert await env.state.check_and_set(DATA + outcome.action_id + ":claim", "dead-process", 120)
        await env.gw.tick()
        assert env.email.actions == []
        await env.advance(119)
        assert env.email.actions == []
        await env.advance(1)
        assert len(env.email.actions) == 1


# ----------------------------------------------------------------------------- management


async def test_list_get_and_cancel() -> None:
    text = rules_text(rule("delay-send", "{type: schedule, delay_seconds: 600}"))
    async with Env(text) as env:
        later = await env.gw.dispatch(make_action())
        env.clock.advance(10)
        sooner = await env.gw.dispatch(make_action(dispatch_at="2026-01-15T12:01:00Z"))
        assert isinstance(later, Scheduled) and isinstance(sooner, Scheduled)
        listed = await env.gw.list_scheduled(NS, TENANT)
        assert [e.id for e in listed] == [sooner.action_id, later.action_id]
        assert all(isinstance(e, ScheduledAction) for e in listed)
        assert await env.gw.list_scheduled(NS, "other") == []
        assert await env.gw.get_scheduled(NS, TENANT, "nope") is None
        assert await env.gw.cancel_scheduled(NS, TENANT, later.action_id) is True
        assert await env.gw.cancel_scheduled(NS, TENANT, later.action_id) is False
        assert await env.gw.cancel_scheduled(NS, TENANT, "nope") is False
        await env.advance(3600)
        assert [a.id for a in env.email.actions] == [listed[0].action.id]
        assert await env.gw.list_scheduled(NS, TENANT) == []


async def test_cancel_loses_against_a_delivery_in_progress() -> None:
    async with Env(DELAY_60) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        assert await env.state.check_and_set(DATA + outcome.action_id + ":claim", "deliverer", 300)
        assert await env.gw.cancel_scheduled(NS, TENANT, outcome.action_id) is False
        assert await env.gw.get_scheduled(NS, TENANT, outcome.action_id) is not None


async def test_blocking_twin() -> None:
    clock = FakeClock(START)
    with Gateway(rules=DELAY_60, clock=clock, background=False) as gw:
        outcome = gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        assert [e.id for e in gw.list_scheduled(NS, TENANT)] == [outcome.action_id]
        assert gw.get_scheduled(NS, TENANT, outcome.action_id) is not None
        assert gw.cancel_scheduled(NS, TENANT, outcome.action_id) is True


# ----------------------------------------------------------------------------- trust, quotas, backends


async def test_trust_is_per_action_and_out_of_band() -> None:
    a, b = make_action(), make_action()
    assert dispatch_origin(a) is None
    with trusted_dispatch("scheduled", a.id):
        assert dispatch_origin(a) == "scheduled"
        assert dispatch_origin(b) is None  # a nested dispatch of another action is not trusted
    assert dispatch_origin(a) is None


async def test_a_scheduled_action_counts_toward_quota_once() -> None:  # D12
    policy = {"namespace": NS, "tenant": TENANT, "max_actions": 2, "window": "hourly", "overage_behavior": "block"}
    async with Env(DELAY_60, quota_policies=[policy]) as env:
        assert isinstance(await env.gw.dispatch(make_action()), Scheduled)
        assert isinstance(await env.gw.dispatch(make_action()), Scheduled)
        await env.advance(60)  # both deliveries pass: they were counted when accepted
        assert len(env.email.actions) == 2
        assert isinstance(await env.gw.dispatch(make_action()), QuotaExceeded)


async def test_every_backend_delivers(any_store: StateStore) -> None:
    async with Env(DELAY_60, state=any_store) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        assert [e.id for e in await env.gw.list_scheduled(NS, TENANT)] == [outcome.action_id]
        await env.advance(59)
        assert env.email.actions == []
        await env.advance(1)
        assert len(env.email.actions) == 1
        await env.advance(600)
        assert len(env.email.actions) == 1
        assert await env.gw.list_scheduled(NS, TENANT) == []


async def test_restart_delivers_from_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    clock = FakeClock(START)
    async with SQLiteStateStore(path) as store, Env(DELAY_60, state=store, clock=clock) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
    clock.advance(120)  # the process was down when the action came due
    async with SQLiteStateStore(path) as store, Env(DELAY_60, state=store, clock=clock) as env:
        assert (await env.gw.tick())["scheduled_actions"] == 1
        assert len(env.email.actions) == 1
        assert env.email.actions[0].payload["_scheduled_dispatch"] is True
        await env.advance(600)
        assert len(env.email.actions) == 1


async def test_action_round_trips_through_storage() -> None:
    async with Env(DELAY_60) as env:
        action = Action(
            namespace=NS, tenant=TENANT, provider="email", action_type="send_email", payload={"a": [1, {"b": None}]},
            metadata={"team": "ops"}, dedup_key="k", fingerprint="fp", status="open",
            starts_at="2026-01-15T11:00:00Z", trace_context={"traceparent": "00-abc-def-01"},
        )
        outcome = await env.gw.dispatch(action)
        assert isinstance(outcome, Scheduled)
        entry = await env.gw.get_scheduled(NS, TENANT, outcome.action_id)
        assert entry is not None and entry.action == action
        await env.advance(60)
        [delivered] = env.email.actions
        assert delivered.model_copy(update={"payload": action.payload}) == action


async def test_unreadable_entry_is_dropped_with_an_event() -> None:
    async with Env() as env:
        failures = env.gw.events(event_type="scheduled_action_failed")
        await env.state.set(DATA + "bad", "{not json")
        await env.state.set(PENDING + "bad", "1")
        await env.state.index_timeout(PENDING + "bad", 1)
        assert (await env.gw.tick())["scheduled_actions"] == 0
        event = failures.get_nowait()
        assert event is not None and event.action_id == "bad" and "unreadable" in event.data["error"]
        assert await env.state.get_expired_timeouts(int(env.clock.time() * 1000)) == []
        await failures.aclose()


async def test_suppressed_delivery_is_not_retried() -> None:
    text = rules_text(rule("block", "{type: suppress}"))
    async with Env(text) as env:
        await env.gw.dispatch(make_action(dispatch_at="2026-01-15T12:00:05Z"))
        await env.advance(5)
        await env.advance(3600)
        assert env.counters("suppressed") == {"suppressed": 1}


async def test_reroute_error_message_is_kept() -> None:
    # The pipeline error surfaces as the entry's last_error (what an operator sees first).
    async with Env(REROUTE_DELIVERIES) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Scheduled)
        await env.advance(60)
        entry = await env.gw.get_scheduled(NS, TENANT, outcome.action_id)
        assert entry is not None and entry.last_error == str(ProviderNotFoundError("nowhere"))
