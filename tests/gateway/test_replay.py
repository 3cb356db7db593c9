"""Action replay from the audit trail (core-pipeline.md §14, scenario 65)."""

from __future__ import annotations

from typing import Any

import pytest

from acteon import Action, AsyncGateway, Caller, Gateway, ReplayError
from acteon.audit import MemoryAuditStore
from acteon.outcomes import Deduplicated, Executed
from acteon.testing import FakeClock, RecordingProvider

pytestmark = pytest.mark.anyio

DEDUP = "rules:\n  - {name: d, condition: {field: action.action_type, eq: once}, action: {type: deduplicate, ttl_seconds: 60}}\n"


def make(**kw: Any) -> Action:
    data: dict[str, Any] = {"namespace": "notifications", "tenant": "tenant-1", "provider": "email",
                            "action_type": "send_email", "payload": {"to": "a@example.com"}}
    data.update(kw)
    return Action(**data)


async def test_replay_by_action_id_rebuilds_and_dispatches() -> None:
    email = RecordingProvider("email")
    audit = MemoryAuditStore()
    async with AsyncGateway(providers=[email], audit=audit, clock=FakeClock(), background=False) as gw:
        original = make(metadata={"team": "ops"}, fingerprint="fp-1", status="open",
                        starts_at="2026-01-15T10:00:00Z")
        await gw.dispatch(original)
        result = await gw.replay_action(original.id, caller=Caller("alice", "api_key"))
        assert result.success and result.error is None
        assert result.original_action_id == original.id and result.new_action_id != original.id
        replayed = email.actions[-1]
        assert replayed.id == result.new_action_id
        assert replayed.payload == {"to": "a@example.com"}
        assert replayed.metadata == {"team": "ops", "replayed_from": original.id}
        assert (replayed.fingerprint, replayed.status) == ("fp-1", "open")
        assert replayed.starts_at == original.starts_at
        record = await gw.audit_get(result.new_action_id)
        assert record is not None and record.metadata["replayed_from"] == original.id
        assert record.caller_id == "alice"
        assert result.to_dict() == {"original_action_id": original.id, "new_action_id": replayed.id,
                                    "success": True, "error": None}


async def test_replay_keeps_dedup_key_so_a_live_key_deduplicates() -> None:
    async with AsyncGateway(rules=DEDUP, providers=[RecordingProvider("email")], audit=MemoryAuditStore(),
                            clock=FakeClock(), background=False) as gw:
        original = make(action_type="once", dedup_key="k1")
        assert isinstance(await gw.dispatch(original), Executed)
        events = gw.events()
        result = await gw.replay_action(original.id)
        assert result.success
        event = events.get_nowait()
        assert event is not None and event.outcome_kind == Deduplicated.kind


async def test_replay_errors() -> None:
    async with AsyncGateway(providers=[RecordingProvider("email")], clock=FakeClock(), background=False) as gw:
        with pytest.raises(ReplayError, match="audit is not enabled"):
            await gw.replay_action("x")
    async with AsyncGateway(providers=[RecordingProvider("email")], audit=MemoryAuditStore(),
                            config={"audit_store_payload": False}, clock=FakeClock(), background=False) as gw:
        with pytest.raises(ReplayError, match="no audit record found for action: nope"):
            await gw.replay_action("nope")
        a = make()
        await gw.dispatch(a)
        with pytest.raises(ReplayError, match="no stored payload") as info:
            await gw.replay_action(a.id)
        assert info.value.code == "VALIDATION_ERROR"


async def test_bulk_replay_counts_and_skips() -> None:
    email = RecordingProvider("email")
    async with AsyncGateway(providers=[email], audit=MemoryAuditStore(), clock=FakeClock(),
                            background=False) as gw:
        for _ in range(3):
            await gw.dispatch(make(metadata={"batch_id": "test-batch"}))
        await gw.dispatch(make(namespace="other"))
        summary = await gw.replay_audit({"namespace": "notifications", "limit": 10})
        assert (summary.replayed, summary.failed, summary.skipped) == (3, 0, 0)
        assert len(summary.results) == 3
        assert sorted(a.metadata.get("batch_id", "") for a in email.actions[-3:]) == ["test-batch"] * 3
        assert summary.to_dict()["replayed"] == 3


async def test_bulk_replay_reports_dispatch_errors_as_failed() -> None:
    reroute = "rules:\n  - {name: r, condition: {field: action.action_type, eq: bad}, action: {type: reroute, target_provider: nowhere}}\n"
    async with AsyncGateway(providers=[RecordingProvider("email")], audit=MemoryAuditStore(),
                            clock=FakeClock(), background=False) as gw:
        await gw.dispatch(make(action_type="bad_later"))
        gw.reload_rules(reroute.replace("bad", "bad_later"))
        summary = await gw.replay_audit({"action_type": "bad_later"})
        assert (summary.replayed, summary.failed) == (0, 1)
        assert all("provider not found: nowhere" in (r.error or "") for r in summary.results)


def test_blocking_twin() -> None:
    with Gateway(providers=[RecordingProvider("email")], audit=MemoryAuditStore(), background=False) as gw:
        a = make()
        gw.dispatch(a)
        assert gw.replay_action(a.id).success
        assert gw.replay_audit({"tenant": "tenant-1"}).replayed == 2
