"""Dispatch pipeline on memory stores (core-pipeline.md §5, scenarios of §22)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from acteon import (
    Action,
    AsyncGateway,
    ChainError,
    GatewayConfig,
    LockFailed,
    ProviderNotFoundError,
    RuleEvaluationError,
)
from acteon.audit import AuditQuery, MemoryAuditStore
from acteon.outcomes import (
    Deduplicated,
    DryRun,
    Executed,
    Failed,
    Outcome,
    Rerouted,
    Suppressed,
    Throttled,
)
from acteon.state import MemoryStateStore
from acteon.testing import FailingProvider, FakeClock, RecordingProvider

pytestmark = pytest.mark.anyio


def make_action(**overrides: Any) -> Action:
    data: dict[str, Any] = {
        "namespace": "notifications",
        "tenant": "tenant-1",
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com"},
    }
    data.update(overrides)
    return Action(**data)


def rule(name: str, action: str, condition: str = "{all: []}", priority: int = 0) -> str:
    return f"  - {{name: {name}, priority: {priority}, condition: {condition}, action: {action}}}\n"


def rules_text(*rules: str) -> str:
    return "rules:\n" + "".join(rules)


class Env:
    def __init__(self, rules: str | None = None, **config: Any) -> None:
        self.clock = FakeClock("2026-01-15T12:00:30Z")
        self.email = RecordingProvider("email")
        self.sms = RecordingProvider("sms-fallback")
        self.audit = MemoryAuditStore()
        self.state = MemoryStateStore()
        cfg = {"executor": {"max_retries": 0, "timeout_seconds": 5, "max_concurrent": 10}}
        cfg.update(config)
        self.gw = AsyncGateway(
            rules=rules,
            state=self.state,
            audit=self.audit,
            providers=[self.email, self.sms],
            config=cfg,
            clock=self.clock,
            background=False,
        )

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gw.__aexit__(None, None, None)

    def counters(self, *names: str) -> dict[str, int]:
        snap = self.gw.metrics.snapshot()
        return {n: snap[n] for n in names}


async def test_no_rules_executes() -> None:
    async with Env() as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Executed)
        assert outcome.response.body == {"ok": True}
        assert env.counters("dispatched", "executed") == {"dispatched": 1, "executed": 1}
        assert len(env.email.actions) == 1


async def test_dedup_executes_once_per_key() -> None:
    text = rules_text(rule("dedup", "{type: deduplicate, ttl_seconds: 300}"))
    async with Env(text) as env:
        first = await env.gw.dispatch(make_action(dedup_key="unique-key"))
        second = await env.gw.dispatch(make_action(dedup_key="unique-key"))
        assert isinstance(first, Executed)
        assert second == Deduplicated()
        assert env.counters("dispatched", "executed", "deduplicated") == {
            "dispatched": 2, "executed": 1, "deduplicated": 1}
        assert await env.state.get("notifications:tenant-1:dedup:unique-key") == "1"
        # different keys both run
        await env.gw.dispatch(make_action(dedup_key="k2"))
        assert len(env.email.actions) == 2
        # the TTL comes from the rule and the injected clock
        env.clock.advance(301)
        assert isinstance(await env.gw.dispatch(make_action(dedup_key="unique-key")), Executed)


async def test_dedup_without_key_uses_action_id() -> None:
    text = rules_text(rule("dedup", "{type: deduplicate}"))
    async with Env(text) as env:
        action = make_action()
        assert isinstance(await env.gw.dispatch(action), Executed)
        assert isinstance(await env.gw.dispatch(action), Deduplicated)


async def test_suppress_and_deny_both_suppress() -> None:
    async with Env(rules_text(rule("block-all", "{type: suppress}"))) as env:
        assert await env.gw.dispatch(make_action()) == Suppressed("block-all")
        assert env.counters("suppressed") == {"suppressed": 1}
        assert env.email.actions == []
    async with Env(rules_text(rule("deny-all", "{type: deny}"))) as env:
        assert await env.gw.dispatch(make_action()) == Suppressed("deny-all")


async def test_reroute() -> None:
    async with Env(rules_text(rule("reroute-sms", "{type: reroute, target_provider: sms-fallback}"))) as env:
        outcome = await env.gw.dispatch(make_action())
        assert isinstance(outcome, Rerouted)
        assert (outcome.original_provider, outcome.new_provider) == ("email", "sms-fallback")
        assert env.counters("rerouted") == {"rerouted": 1}
        assert env.email.actions == [] and len(env.sms.actions) == 1
        # the provider still sees the original provider field
        assert env.sms.actions[0].provider == "email"


async def test_reroute_to_unknown_provider_raises_and_releases_lock() -> None:
    text = rules_text(rule("bad", "{type: reroute, target_provider: does-not-exist}"))
    async with Env(text, dispatch_lock_timeout_seconds=0) as env:
        action = make_action()
        with pytest.raises(ProviderNotFoundError, match="provider not found: does-not-exist"):
            await env.gw.dispatch(action)
        # D8: the lock was released, so the same action id is not blocked
        with pytest.raises(ProviderNotFoundError):
            await env.gw.dispatch(action)
        assert await env.state.distributed_lock().try_acquire(
            f"dispatch:notifications:tenant-1:{action.id}", 1) is not None
        # and the attempt was audited
        page = await env.audit.query(AuditQuery(action_id=action.id))
        assert page.total == 2
        assert page.records[0].outcome == "failed"
        assert page.records[0].outcome_details["code"] == "GATEWAY_ERROR"


async def test_busy_dispatch_lock_raises_lock_failed() -> None:
    async with Env(dispatch_lock_timeout_seconds=1) as env:
        action = make_action()
        guard = await env.state.distributed_lock().try_acquire(
            f"dispatch:notifications:tenant-1:{action.id}", 30)
        assert guard is not None
        with pytest.raises(LockFailed, match="lock acquisition failed: operation timed out after 1s"):
            await env.gw.dispatch(action)
        await guard.release()
        assert isinstance(await env.gw.dispatch(action), Executed)


async def test_throttle_counts_in_fixed_windows() -> None:
    text = rules_text(rule("rate-limit", "{type: throttle, max_count: 3, window_seconds: 60}"))
    async with Env(text) as env:  # clock at 12:00:30, window [12:00:00, 12:01:00)
        outcomes = [await env.gw.dispatch(make_action()) for _ in range(4)]
        assert [type(o) for o in outcomes[:3]] == [Executed] * 3
        assert outcomes[3] == Throttled(timedelta(seconds=30))
        assert env.counters("throttled", "executed") == {"throttled": 1, "executed": 3}
        env.clock.advance(25)
        throttled = await env.gw.dispatch(make_action())
        assert throttled == Throttled(timedelta(seconds=5))
        env.clock.advance(5)  # new window
        assert isinstance(await env.gw.dispatch(make_action()), Executed)


async def test_throttle_is_per_tenant() -> None:
    text = rules_text(rule("rate-limit", "{type: throttle, max_count: 1, window_seconds: 60}"))
    async with Env(text) as env:
        assert isinstance(await env.gw.dispatch(make_action()), Executed)
        assert isinstance(await env.gw.dispatch(make_action()), Throttled)
        assert isinstance(await env.gw.dispatch(make_action(tenant="tenant-2")), Executed)


async def test_missing_provider_fails() -> None:
    async with Env() as env:
        outcome = await env.gw.dispatch(make_action(provider="nonexistent"))
        assert outcome == Failed("PROVIDER_NOT_FOUND", "provider not found: nonexistent", False, 0)
        assert env.counters("failed") == {"failed": 1}


async def test_modify_merge_patch() -> None:
    text = rules_text(rule("mod", '{type: modify, changes: {priority: high, to: admin@example.com, drop: null}}'))
    async with Env(text) as env:
        original = make_action(payload={"to": "user@example.com", "drop": 1, "keep": True})
        outcome = await env.gw.dispatch(original)
        assert isinstance(outcome, Executed)
        assert env.email.actions[0].payload == {"to": "admin@example.com", "priority": "high", "keep": True}
        assert env.email.actions[0].id == original.id
        # the audit keeps the original payload
        record = await env.audit.get_by_action_id(original.id)
        assert record is not None and record.action_payload == {"to": "user@example.com", "drop": 1, "keep": True}
        assert record.verdict == "modify" and record.matched_rule == "mod"


async def test_priority_order() -> None:
    text = rules_text(
        rule("allow-spam", "{type: allow}", "{field: action.action_type, eq: spam}", priority=10),
        rule("block-spam-high", "{type: suppress}",
             "{all: [{field: action.action_type, eq: spam}, {field: action.payload.priority, eq: high}]}",
             priority=1),
    )
    async with Env(text) as env:
        high = await env.gw.dispatch(make_action(action_type="spam", payload={"priority": "high"}))
        low = await env.gw.dispatch(make_action(action_type="spam", payload={"priority": "low"}))
        assert high == Suppressed("block-spam-high")
        assert isinstance(low, Executed)


async def test_reload_rules_replaces_set() -> None:
    async with Env() as env:
        assert isinstance(await env.gw.dispatch(make_action()), Executed)
        env.gw.reload_rules(rules_text(rule("block", "{type: suppress}")))
        assert await env.gw.dispatch(make_action()) == Suppressed("block")
        assert env.gw.disable_rule("block") is True
        assert isinstance(await env.gw.dispatch(make_action()), Executed)
        assert env.gw.enable_rule("block") is True
        assert env.gw.enable_rule("missing") is False


async def test_counters_for_plain_dispatches() -> None:
    async with Env() as env:
        for _ in range(5):
            await env.gw.dispatch(make_action())
        snap = env.gw.metrics.snapshot()
        assert snap["dispatched"] == 5 and snap["executed"] == 5
        assert all(v == 0 for k, v in snap.items() if k not in ("dispatched", "executed"))


async def test_rule_error_fails_closed_and_is_audited() -> None:
    text = rules_text(rule("retry-backup", "{type: reroute, target_provider: sms-fallback}",
                           "{field: action.metadata.retry_count, gt: 2}"))
    async with Env(text) as env:
        action = make_action(metadata={"retry_count": "3"})
        with pytest.raises(RuleEvaluationError) as info:
            await env.gw.dispatch(action)
        assert str(info.value).startswith("type error: cannot compare string and int")
        assert info.value.rule == "retry-backup"
        assert env.email.actions == [] and env.sms.actions == []
        record = await env.audit.get_by_action_id(action.id)
        assert record is not None
        assert record.verdict == "error" and record.outcome == "failed"
        assert record.outcome_details["code"] == "RULE_EVALUATION_ERROR"
        assert record.matched_rule == "retry-backup"


async def test_chain_verdict_for_an_unknown_chain_is_refused_not_allowed() -> None:
    async with Env(rules_text(rule("later", "{type: chain, chain: incident}"))) as env:
        with pytest.raises(ChainError, match="chain configuration not found: incident"):
            await env.gw.dispatch(make_action())
        assert env.email.actions == []


# ----------------------------------------------------------------------------- dry run


async def test_dry_run_never_executes_or_counts() -> None:
    async with Env() as env:
        outcome = await env.gw.dispatch(make_action(), dry_run=True)
        assert outcome == DryRun("allow", None, "email")
        assert env.email.actions == []
        assert env.gw.metrics.snapshot()["dispatched"] == 0
        assert len(env.audit) == 0


@pytest.mark.parametrize("action,expected", [
    ("{type: suppress}", DryRun("suppress", "r", "email")),
    ("{type: reroute, target_provider: sms-fallback}", DryRun("reroute", "r", "sms-fallback")),
    ("{type: throttle, max_count: 100, window_seconds: 60}", DryRun("throttle", "r", "email")),
    ("{type: deduplicate, ttl_seconds: 60}", DryRun("deduplicate", None, "email")),
])
async def test_dry_run_reports_verdict(action: str, expected: DryRun) -> None:
    async with Env(rules_text(rule("r", action))) as env:
        assert await env.gw.dispatch(make_action(dedup_key="unique-key"), dry_run=True) == expected


async def test_dry_run_dedup_records_nothing() -> None:
    async with Env(rules_text(rule("d", "{type: deduplicate, ttl_seconds: 60}"))) as env:
        await env.gw.dispatch(make_action(dedup_key="k"), dry_run=True)
        assert isinstance(await env.gw.dispatch(make_action(dedup_key="k")), Executed)


# ----------------------------------------------------------------------------- batch


async def test_batch_keeps_input_order_and_isolates_errors() -> None:
    text = rules_text(rule("bad", "{type: reroute, target_provider: nowhere}",
                           "{field: action.action_type, eq: broken}"))
    async with Env(text) as env:
        actions = [make_action(payload={"i": i}) for i in range(50)]
        actions[7] = make_action(action_type="broken")
        results = await env.gw.dispatch_batch(actions)
        assert len(results) == 50
        assert isinstance(results[7], ProviderNotFoundError)
        others = [r for i, r in enumerate(results) if i != 7]
        assert all(isinstance(r, Executed) for r in others)
        assert [a.payload for a in env.email.actions] != []
        assert len(env.email.actions) == 49


async def test_batch_dry_run() -> None:
    async with Env(rules_text(rule("block-all", "{type: suppress}"))) as env:
        results = await env.gw.dispatch_batch([make_action(), make_action()], dry_run=True)
        assert results == [DryRun("suppress", "block-all", "email")] * 2


# ----------------------------------------------------------------------------- audit


async def test_one_audit_record_per_dispatch_with_upstream_fields() -> None:
    async with Env(rules_text(rule("dedup", "{type: deduplicate, ttl_seconds: 300}"))) as env:
        a1 = make_action(dedup_key="k", metadata={"team": "ops"}, fingerprint="fp")
        await env.gw.dispatch(a1)
        await env.gw.dispatch(make_action(dedup_key="k"))
        page = await env.gw.audit_query({"namespace": "notifications"})
        assert page.total == 2
        rec = await env.gw.audit_get(a1.id)
        assert rec is not None
        assert rec.verdict == "deduplicate" and rec.matched_rule is None
        assert rec.outcome == "executed" and rec.outcome_details == {"status": "Success"}
        assert rec.verdict_details == {"verdict": "deduplicate"}
        assert rec.metadata == {"team": "ops", "__dedup_key": "k", "__fingerprint": "fp"}
        assert rec.action_payload == {"to": "user@example.com"}
        assert rec.dispatched_at == env.clock.now()
        assert rec.expires_at is None  # D20: retention off unless configured
        wire = rec.to_dict()
        assert wire["dispatched_at"] == "2026-01-15T12:00:30Z"
        dup = (await env.gw.audit_query({"outcome": "deduplicated"})).records
        assert len(dup) == 1 and dup[0].outcome_details == {}


async def test_audit_payload_privacy_and_ttl() -> None:
    async with Env(audit_store_payload=False, audit_ttl_seconds=60) as env:
        action = make_action()
        await env.gw.dispatch(action)
        rec = await env.gw.audit_get(action.id)
        assert rec is not None and rec.action_payload is None
        assert rec.expires_at == env.clock.now() + timedelta(seconds=60)
        env.clock.advance(61)
        summary = await env.gw.tick()
        assert summary["audit_expired"] == 1
        assert await env.gw.audit_get(action.id) is None


async def test_caller_identity_reaches_audit() -> None:
    from acteon import Caller

    async with Env() as env:
        action = make_action()
        await env.gw.dispatch(action, caller=Caller("alice", "api_key"))
        rec = await env.gw.audit_get(action.id)
        assert rec is not None and (rec.caller_id, rec.auth_method) == ("alice", "api_key")
        page = await env.gw.audit_query(AuditQuery(caller_id="alice"))
        assert page.total == 1


# ----------------------------------------------------------------------------- events


async def test_events_one_per_dispatch_sanitised() -> None:
    async with Env() as env:
        sub = env.gw.events(namespace="notifications")
        a1, a2 = make_action(), make_action()
        await env.gw.dispatch(a1)
        await env.gw.dispatch(a2, dry_run=True)
        await env.gw.dispatch(a2)
        e1 = sub.get_nowait()
        e2 = sub.get_nowait()
        assert sub.get_nowait() is None
        assert e1 is not None and e2 is not None
        assert (e1.action_id, e2.action_id) == (a1.id, a2.id)
        assert e1.id != e2.id
        d = e1.to_dict()
        assert d["type"] == "action_dispatched"
        assert d["namespace"] == "notifications" and d["tenant"] == "tenant-1"
        assert d["action_type"] == "send_email" and d["provider"] == "email"
        assert d["outcome"] == {"Executed": {"status": "success", "body": None, "headers": {}}}
        await sub.aclose()


async def test_event_filters_and_lagged_marker() -> None:
    async with Env(rules_text(rule("block", "{type: suppress}", "{field: action.action_type, eq: spam}")),
                   event_buffer_size=2) as env:
        suppressed_only = env.gw.events(outcome="suppressed")
        everything = env.gw.events()
        for _ in range(3):
            await env.gw.dispatch(make_action())
        await env.gw.dispatch(make_action(action_type="spam"))
        ev = suppressed_only.get_nowait()
        assert ev is not None and ev.outcome_kind == "suppressed"
        assert suppressed_only.get_nowait() is None
        lagged = everything.get_nowait()
        assert lagged is not None and lagged.type == "lagged" and lagged.data["skipped"] == 2
        rest = [everything.get_nowait(), everything.get_nowait()]
        assert [e.outcome_kind for e in rest if e] == ["executed", "suppressed"]


async def test_event_async_iteration() -> None:
    import anyio

    async with Env() as env:
        received: list[Outcome | str] = []
        sub = env.gw.events()

        async def consume() -> None:
            async for event in sub:
                received.append(event.type)
                if len(received) == 2:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await env.gw.dispatch(make_action())
            await env.gw.dispatch(make_action())
        assert received == ["action_dispatched", "action_dispatched"]


# ----------------------------------------------------------------------------- executor in the pipeline


async def test_retries_then_dlq() -> None:
    clock = FakeClock()
    flaky = FailingProvider("email", failures=None, message="transient")
    config = GatewayConfig.model_validate({"executor": {
        "max_retries": 3, "dlq_enabled": True, "retry": {"strategy": "constant", "base_ms": 1}}})
    async with AsyncGateway(providers=[flaky], config=config, clock=clock, background=False) as gw:
        outcome = await gw.dispatch(make_action())
        assert outcome == Failed("CONNECTION", "connection error: transient", True, 4)
        assert flaky.calls == 4
        dead = gw.dlq_list()
        assert len(dead) == 1 and dead[0].attempts == 4
        assert gw.dlq_drain()[0].error == "connection error: transient"
        assert gw.dlq_list() == []


async def test_dict_actions_are_accepted() -> None:
    async with Env() as env:
        outcome = await env.gw.dispatch({
            "namespace": "notifications", "tenant": "tenant-1", "provider": "email",
            "action_type": "send_email", "payload": {}, "metadata": {"labels": {"a": "b"}}})
        assert isinstance(outcome, Executed)
        assert env.email.actions[0].metadata == {"a": "b"}
