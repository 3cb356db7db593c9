"""The rule playground through the gateway (rules.md §10.4) and the clock-driven ``time``/``now``.

``gw.evaluate_rules`` must read the gateway's state (with the ``mock_state``
overlay on top), its environment, default timezone and injected clock, and
must never write, execute, audit, publish or count anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from acteon import Action, AsyncGateway
from acteon.audit import AuditQuery, MemoryAuditStore
from acteon.outcomes import Executed, Suppressed
from acteon.state import MemoryStateStore
from acteon.testing import FakeClock, RecordingProvider

pytestmark = pytest.mark.anyio

NS, TENANT = "notifications", "acme"


def make_action(**overrides: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": NS,
        "tenant": TENANT,
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com", "subject": "Hello"},
    }
    data.update(overrides)
    return Action(**data)


def gateway(rules: str, *, clock: FakeClock | None = None, **config: Any) -> AsyncGateway:
    return AsyncGateway(
        rules=rules,
        state=MemoryStateStore(),
        audit=MemoryAuditStore(),
        providers=[RecordingProvider("email")],
        config=config or None,
        clock=clock or FakeClock("2026-01-15T14:00:00Z"),
        background=False,
    )


# --------------------------------------------------------------------------- time and now()

TIME_RULES = """
rules:
  - name: eastern-rule
    priority: 1
    timezone: US/Eastern
    condition: {field: action.action_type, eq: probe-rule-zone}
    action: {type: deny}
  - name: hour-in-rule-zone
    priority: 2
    timezone: Asia/Tokyo
    condition:
      all:
        - {field: action.action_type, eq: tokyo}
        - {field: time.hour, eq: 23}
        - {field: time.weekday, eq: Thursday}
        - {field: time.day, eq: 15}
    action: {type: suppress}
  - name: hour-in-default-zone
    priority: 3
    condition:
      all:
        - {field: action.action_type, eq: default}
        - {field: time.hour, eq: 9}
        - {field: time.minute, eq: 30}
        - {field: time.second, eq: 15}
        - {field: time.day, eq: 15}
        - {field: time.month, eq: 1}
        - {field: time.year, eq: 2026}
        - {field: time.weekday, eq: Thursday}
        - {field: time.weekday_num, eq: 4}
        - {field: time.timestamp, eq: 1768487415}
    action: {type: suppress}
"""


async def test_time_map_follows_rule_zone_then_gateway_default_from_the_injected_clock() -> None:
    clock = FakeClock("2026-01-15T14:30:15Z")  # 09:30:15 in New York, 23:30:15 in Tokyo
    gw = gateway(TIME_RULES, clock=clock, default_timezone="US/Eastern")
    async with gw:
        assert await gw.dispatch(make_action(action_type="default")) == Suppressed("hour-in-default-zone")
        assert await gw.dispatch(make_action(action_type="tokyo")) == Suppressed("hour-in-rule-zone")
        # an hour later neither hour matches any more: the clock, not the wall clock, decides
        clock.advance(3600)
        assert isinstance(await gw.dispatch(make_action(action_type="default")), Executed)
        assert isinstance(await gw.dispatch(make_action(action_type="tokyo")), Executed)


async def test_time_map_defaults_to_utc_without_a_gateway_timezone() -> None:
    rules = """
rules:
  - {name: utc-hour, condition: {field: time.hour, eq: 14}, action: {type: suppress}}
"""
    async with gateway(rules, clock=FakeClock("2026-01-15T14:59:59Z")) as gw:
        assert await gw.dispatch(make_action()) == Suppressed("utc-hour")
    async with gateway(rules, clock=FakeClock("2026-01-15T14:59:59Z"), default_timezone="US/Eastern") as gw:
        assert isinstance(await gw.dispatch(make_action()), Executed)


async def test_trace_context_time_is_the_gateway_default_zone() -> None:
    async with gateway(TIME_RULES, default_timezone="US/Eastern") as gw:
        trace = await gw.evaluate_rules(make_action(action_type="default"))
        assert trace.context.effective_timezone == "US/Eastern"
        assert trace.context.time["hour"] == 9
        assert trace.context.time["weekday"] == "Thursday"
        assert trace.context.time["timestamp"] == 1768485600
        wire = trace.to_dict()
        assert wire["context"]["time"]["Map"]["hour"] == {"Int": 9}
        assert wire["context"]["effective_timezone"] == "US/Eastern"


NOW_RULES = """
rules:
  - name: cel-now-call
    priority: 1
    condition: {cel: 'action.action_type == "call" && now() == 1768485600'}
    action: {type: suppress}
  - name: now-identifier
    priority: 2
    condition: {cel: 'action.action_type == "ident" && now == 1768485600'}
    action: {type: suppress}
  - name: recent-deadline
    priority: 3
    condition: {cel: 'action.action_type == "deadline" && now() > int(action.payload.deadline)'}
    action: {type: deny}
"""


async def test_now_call_reads_the_injected_clock_in_dispatch() -> None:
    clock = FakeClock("2026-01-15T14:00:00Z")
    async with gateway(NOW_RULES, clock=clock) as gw:
        assert await gw.dispatch(make_action(action_type="call")) == Suppressed("cel-now-call")
        assert await gw.dispatch(make_action(action_type="ident")) == Suppressed("now-identifier")
        deadline = make_action(action_type="deadline", payload={"deadline": 1768485660})
        assert isinstance(await gw.dispatch(deadline), Executed)
        clock.advance(61)
        assert await gw.dispatch(deadline) == Suppressed("recent-deadline")
        assert isinstance(await gw.dispatch(make_action(action_type="call")), Executed)


async def test_evaluate_at_drives_time_and_now() -> None:
    async with gateway(NOW_RULES + TIME_RULES.replace("rules:\n", ""), default_timezone="US/Eastern") as gw:
        at = datetime(2026, 1, 15, 14, 0, 0, tzinfo=UTC)
        trace = await gw.evaluate_rules(make_action(action_type="call"), evaluate_at=at)
        assert (trace.verdict, trace.matched_rule) == ("suppress", "cel-now-call")
        later = await gw.evaluate_rules(make_action(action_type="call"), evaluate_at=datetime(2026, 1, 16, tzinfo=UTC))
        assert later.verdict == "allow"
        # evaluate_at also moves the time map (and the trace context)
        morning = datetime(2026, 1, 15, 14, 30, 15, tzinfo=UTC)
        trace = await gw.evaluate_rules(make_action(action_type="default"), evaluate_at=morning)
        assert trace.matched_rule == "hour-in-default-zone"
        assert trace.context.time["minute"] == 30
        trace = await gw.evaluate_rules(make_action(action_type="tokyo"), evaluate_at=morning)
        assert trace.matched_rule == "hour-in-rule-zone"


# --------------------------------------------------------------------------- mock_state

STATE_RULES = """
rules:
  - {name: too-many, priority: 1, condition: {state_counter: alert_count, gt: 3}, action: {type: suppress}}
  - {name: seen-recently, priority: 2, condition: {state_seen: last-page, within_seconds: 600}, action: {type: deny}}
"""


async def test_mock_state_by_id_part_and_by_full_key_with_fallback_to_the_store() -> None:
    async with gateway(STATE_RULES) as gw:
        act = make_action()
        assert (await gw.evaluate_rules(act)).verdict == "allow"
        # the id part answers the counter ...
        trace = await gw.evaluate_rules(act, mock_state={"alert_count": "5"})
        assert (trace.verdict, trace.matched_rule) == ("suppress", "too-many")
        assert trace.context.accessed_state_keys == ["counter:alert_count"]
        # ... and so does the canonical key
        trace = await gw.evaluate_rules(act, mock_state={f"{NS}:{TENANT}:counter:alert_count": "4"})
        assert trace.matched_rule == "too-many"
        # a key of another tenant does not
        trace = await gw.evaluate_rules(act, mock_state={f"{NS}:other:counter:alert_count": "9"})
        assert trace.verdict == "allow"
        # keys the overlay does not name come from the real store
        await gw.state.set(f"{NS}:{TENANT}:state:last-page", "2026-01-15T13:55:00Z")
        trace = await gw.evaluate_rules(act, mock_state={"alert_count": "1"})
        assert (trace.verdict, trace.matched_rule) == ("deny", "seen-recently")
        # and the overlay wins over the store
        await gw.state.set(f"{NS}:{TENANT}:counter:alert_count", "10")
        trace = await gw.evaluate_rules(act, mock_state={"alert_count": "0", "last-page": "2000-01-01T00:00:00Z"})
        assert trace.verdict == "allow"
        # nothing of the overlay leaked into the store
        assert await gw.state.get(f"{NS}:{TENANT}:counter:last-page") is None
        assert await gw.state.get(f"{NS}:{TENANT}:counter:alert_count") == "10"


# --------------------------------------------------------------------------- modify preview

PLAYGROUND_RULES = """
rules:
  - name: block-spam
    priority: 1
    description: Block spam actions
    condition: {field: action.payload.category, eq: spam}
    action: {type: suppress}
  - name: add-sender
    priority: 5
    condition: {field: action.action_type, eq: email}
    action: {type: modify, changes: {from: noreply@acme.com, meta: {source: rules}}}
  - name: tidy
    priority: 10
    condition: {field: action.action_type, eq: email}
    action: {type: modify, changes: {subject: null, meta: {checked: true}}}
"""


async def test_modify_preview_first_match_and_evaluate_all() -> None:
    act = make_action(action_type="email")
    async with gateway(PLAYGROUND_RULES) as gw:
        trace = await gw.evaluate_rules(act)
        assert (trace.verdict, trace.matched_rule) == ("modify", "add-sender")
        assert trace.modified_payload == {
            "to": "user@example.com", "subject": "Hello", "from": "noreply@acme.com", "meta": {"source": "rules"}}
        assert [e.result for e in trace.trace] == ["not_matched", "matched", "skipped"]

        trace = await gw.evaluate_rules(act, evaluate_all=True)
        wire = trace.to_dict()
        assert wire["verdict"] == "modify" and wire["matched_rule"] == "add-sender"
        entries = {e["rule_name"]: e for e in wire["trace"]}
        assert "modify_patch" not in entries["block-spam"]
        assert entries["add-sender"]["modify_patch"] == {"from": "noreply@acme.com", "meta": {"source": "rules"}}
        assert entries["add-sender"]["modified_payload_preview"] == {
            "to": "user@example.com", "subject": "Hello", "from": "noreply@acme.com", "meta": {"source": "rules"}}
        assert entries["tidy"]["modified_payload_preview"] == {
            "to": "user@example.com", "from": "noreply@acme.com", "meta": {"source": "rules", "checked": True}}
        # modified_payload is the matched (first) rule's patch only
        assert wire["modified_payload"] == entries["add-sender"]["modified_payload_preview"]
        # the action itself is untouched
        assert act.payload == {"to": "user@example.com", "subject": "Hello"}


async def test_trace_shape_matches_upstream_keys() -> None:
    async with gateway(PLAYGROUND_RULES) as gw:
        wire = (await gw.evaluate_rules(make_action(action_type="order_shipped"))).to_dict()
        assert list(wire) == [
            "verdict", "has_errors", "total_rules_evaluated", "total_rules_skipped",
            "evaluation_duration_us", "trace", "context"]
        assert wire["trace"][-1]["rule_name"] == "(default fallthrough)"
        assert wire["trace"][-1]["action"] == "Allow"
        wire = (await gw.evaluate_rules({**make_action().to_wire(), "payload": {"category": "spam"}})).to_dict()
        assert wire["trace"][0]["description"] == "Block spam actions"
        assert wire["trace"][1]["skip_reason"] == "earlier_rule_matched"


async def test_disabled_rules_show_with_include_disabled() -> None:
    async with gateway(PLAYGROUND_RULES) as gw:
        gw.disable_rule("add-sender")
        act = make_action(action_type="email")
        trace = await gw.evaluate_rules(act)
        assert trace.matched_rule == "tidy" and "add-sender" not in [e.rule_name for e in trace.trace]
        trace = await gw.evaluate_rules(act, include_disabled=True)
        entry = next(e for e in trace.trace if e.rule_name == "add-sender")
        assert (entry.result, entry.skip_reason, entry.enabled) == ("skipped", "disabled", False)


# --------------------------------------------------------------------------- side effects

SIDE_EFFECT_RULES = """
rules:
  - {name: dedup, priority: 1, condition: {field: action.action_type, eq: dup}, action: {type: deduplicate, ttl_seconds: 60}}
  - {name: limit, priority: 2, condition: {field: action.action_type, eq: lim}, action: {type: throttle, max_count: 1, window_seconds: 60}}
  - {name: bad, priority: 3, condition: {field: action.metadata.retry, gt: 2}, action: {type: deny}}
"""


async def test_playground_never_writes_executes_audits_publishes_or_counts() -> None:
    provider = RecordingProvider("email")
    audit = MemoryAuditStore()
    state = MemoryStateStore()
    gw = AsyncGateway(
        rules=SIDE_EFFECT_RULES, state=state, audit=audit, providers=[provider],
        clock=FakeClock("2026-01-15T14:00:00Z"), background=False,
    )
    async with gw:
        sub = gw.events()
        before = gw.metrics.snapshot()
        for kind in ("dup", "dup", "lim", "lim", "other"):
            trace = await gw.evaluate_rules(
                make_action(action_type=kind, dedup_key="k", metadata={"retry": "5"}), evaluate_all=True)
            assert trace.total_rules_evaluated == 3
        # a rule that errors is reported, never raised
        assert trace.verdict == "error" and trace.has_errors
        assert "type error" in (trace.trace[-1].error or "")
        assert gw.metrics.snapshot() == before
        assert provider.actions == []
        assert await state.scan_keys_by_kind("dedup") == []
        assert await state.scan_keys_by_kind("rate_limit") == []
        assert (await gw.audit_query(AuditQuery())).total == 0
        # the next real dispatch is the first one the gateway sees
        assert isinstance(await gw.dispatch(make_action(action_type="dup", dedup_key="k")), Executed)
        async with sub:
            event = await sub.__anext__()
        assert event.type == "action_dispatched"


def test_blocking_gateway_playground() -> None:
    from acteon import Gateway

    with Gateway(rules=NOW_RULES, clock=FakeClock("2026-01-15T14:00:00Z"), background=False) as gw:
        trace = gw.evaluate_rules(make_action(action_type="call"))
        assert trace.matched_rule == "cel-now-call"
        trace = gw.evaluate_rules(make_action(action_type="call"), evaluate_at=datetime(2027, 1, 1, tzinfo=UTC))
        assert trace.verdict == "allow"
