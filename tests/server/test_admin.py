"""Rules, audit, replay, dead-letter queue and circuit-breaker routes of the HTTP API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from acteon import AsyncGateway
from acteon.outcomes import CircuitOpen, Outcome
from acteon.testing import FailingProvider, RecordingProvider
from tests.server.conftest import action, assert_error, serve

pytestmark = pytest.mark.anyio

API = tuple[AsyncGateway, httpx.AsyncClient]


# ---------------------------------------------------------------------- rules


async def test_list_rules_in_engine_order(api: API) -> None:
    _, client = api
    response = await client.get("/v1/rules")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "block-spam", "priority": 1, "enabled": True, "description": "drop spam"},
        {"name": "to-sms", "priority": 2, "enabled": True, "description": None},
    ]


async def test_enable_and_disable_a_rule(api: API) -> None:
    _, client = api
    off = await client.put("/v1/rules/block-spam/enabled", json={"enabled": False})
    assert off.status_code == 200
    assert off.json() == {"name": "block-spam", "enabled": False, "status": "disabled"}
    assert "Executed" in (await client.post("/v1/dispatch", json=action(action_type="spam"))).json()
    on = await client.put("/v1/rules/block-spam/enabled", json={"enabled": True})
    assert on.json()["status"] == "enabled"
    assert "Suppressed" in (await client.post("/v1/dispatch", json=action(action_type="spam"))).json()
    assert_error(await client.put("/v1/rules/ghost/enabled", json={"enabled": True}), 404, "NOT_FOUND",
                 "rule not found: ghost")
    assert_error(await client.put("/v1/rules/block-spam/enabled", json={"enabled": "yes"}), 422,
                 "VALIDATION_ERROR", "enabled")
    assert_error(await client.post("/v1/rules/block-spam/enabled", json={"enabled": True}), 405,
                 "METHOD_NOT_ALLOWED")


async def test_reload_rules_from_a_directory(api: API, tmp_path: Path) -> None:
    _, client = api
    (tmp_path / "one.yaml").write_text(
        "rules:\n  - {name: deny-all, condition: {field: action.action_type, eq: send_email}, "
        "action: {type: deny}}\n"
    )
    response = await client.post("/v1/rules/reload", json={"directory": str(tmp_path)})
    assert response.status_code == 200
    assert response.json() == {"reloaded": 1, "directory": str(tmp_path)}
    assert [r["name"] for r in (await client.get("/v1/rules")).json()] == ["deny-all"]


async def test_reload_errors_keep_the_current_rules(api: API, tmp_path: Path) -> None:
    _, client = api
    assert_error(await client.post("/v1/rules/reload"), 400, "BAD_REQUEST", "missing 'directory'")
    assert_error(await client.post("/v1/rules/reload", json={}), 400, "BAD_REQUEST", "missing 'directory'")
    assert_error(await client.post("/v1/rules/reload", content=b"", headers={"content-type": "application/json"}),
                 400, "BAD_REQUEST")
    assert_error(await client.post("/v1/rules/reload", content=b"x", headers={"content-type": "text/plain"}),
                 415, "UNSUPPORTED_MEDIA_TYPE")
    missing = tmp_path / "missing"
    assert_error(await client.post("/v1/rules/reload", json={"directory": str(missing)}), 400, "BAD_REQUEST",
                 f"directory not found: {missing}")
    (tmp_path / "bad.yaml").write_text("rules:\n  - {name: x, condition: {field: a, eq: 1}, action: {type: nope}}\n")
    assert_error(await client.post("/v1/rules/reload", json={"directory": str(tmp_path)}), 500, "INTERNAL",
                 str(tmp_path))
    assert len((await client.get("/v1/rules")).json()) == 2  # D10: the old set is still active


async def test_evaluate_rules_trace(api: API) -> None:
    _, client = api
    body = {"namespace": "n", "tenant": "t", "provider": "email", "action_type": "spam", "payload": {}}
    response = await client.post("/v1/rules/evaluate", json=body)
    assert response.status_code == 200
    trace = response.json()
    assert trace["verdict"] == "suppress" and trace["matched_rule"] == "block-spam"
    assert trace["trace"][0]["rule_name"] == "block-spam" and trace["trace"][0]["result"] == "matched"
    assert "context" in trace and trace["has_errors"] is False
    everything = (await client.post("/v1/rules/evaluate", json=body | {"evaluate_all": True,
                                                                       "evaluate_at": "2026-01-15T10:00:00Z"})).json()
    assert len(everything["trace"]) == 2
    assert_error(await client.post("/v1/rules/evaluate", json={"namespace": "n"}), 422, "VALIDATION_ERROR", "tenant")
    assert_error(await client.post("/v1/rules/evaluate", json=body | {"evaluate_at": "soon"}), 422,
                 "VALIDATION_ERROR", "evaluate_at")
    assert_error(await client.post("/v1/rules/evaluate", json=body | {"mock_state": {"k": 1}}), 422,
                 "VALIDATION_ERROR", "mock_state")


# ---------------------------------------------------------------------- audit and replay


async def test_audit_query_filters_and_cursor(api: API) -> None:
    _, client = api
    for index in range(3):
        await client.post("/v1/dispatch", json=action(id=f"a{index}"))
    await client.post("/v1/dispatch", json=action(id="s1", action_type="spam"))
    page = (await client.get("/v1/audit", params={"limit": 2})).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert len(page["records"]) == 2 and "next_cursor" in page
    rest = (await client.get("/v1/audit", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    seen = {r["action_id"] for r in page["records"] + rest["records"]}
    assert seen == {"a0", "a1", "a2", "s1"}
    suppressed = (await client.get("/v1/audit", params={"outcome": "suppressed"})).json()
    assert [r["action_id"] for r in suppressed["records"]] == ["s1"]
    assert suppressed["records"][0]["matched_rule"] == "block-spam"
    by_rule = (await client.get("/v1/audit", params={"matched_rule": "block-spam", "offset": 1})).json()
    assert by_rule["records"] == [] and by_rule["total"] == 1
    future = (await client.get("/v1/audit", params={"from": "2100-01-01T00:00:00Z"})).json()
    assert future["total"] == 0
    assert_error(await client.get("/v1/audit", params={"limit": "ten"}), 400, "BAD_REQUEST", "limit")
    assert_error(await client.get("/v1/audit", params={"from": "yesterday"}), 400, "BAD_REQUEST", "from")
    assert_error(await client.get("/v1/audit", params={"cursor": "!!"}), 400, "BAD_REQUEST", "cursor")


async def test_audit_get_by_action_id(api: API) -> None:
    _, client = api
    await client.post("/v1/dispatch", json=action(id="x-1"))
    record = (await client.get("/v1/audit/x-1")).json()
    assert record["action_id"] == "x-1" and record["outcome"] == "executed"
    assert record["action_payload"] == {"to": "a@example.com"}
    assert_error(await client.get("/v1/audit/none"), 404, "NOT_FOUND", "no audit record found for action: none")


async def test_audit_routes_without_audit_are_404() -> None:
    async with serve(audit=None) as (_, client):
        assert_error(await client.get("/v1/audit"), 404, "NOT_FOUND", "audit is not enabled")
        assert_error(await client.get("/v1/audit/x"), 404, "NOT_FOUND", "audit is not enabled")
        assert_error(await client.post("/v1/audit/x/replay"), 404, "NOT_FOUND", "audit is not enabled")
        assert_error(await client.post("/v1/audit/replay"), 404, "NOT_FOUND", "audit is not enabled")


async def test_replay_one_and_many() -> None:
    email = RecordingProvider("email")
    async with serve(providers=[email]) as (_, client):
        await client.post("/v1/dispatch", json=action(id="orig", metadata={"team": "ops"}))
        result = (await client.post("/v1/audit/orig/replay")).json()
        assert result["original_action_id"] == "orig" and result["success"] is True and result["error"] is None
        assert email.actions[-1].id == result["new_action_id"]
        assert email.actions[-1].metadata == {"team": "ops", "replayed_from": "orig"}
        assert_error(await client.post("/v1/audit/ghost/replay"), 404, "NOT_FOUND", "ghost")
        await client.post("/v1/dispatch", json=action(id="other", tenant="tenant-2"))
        summary = (await client.post("/v1/audit/replay", params={"tenant": "tenant-2"})).json()
        assert summary["replayed"] == 1 and summary["failed"] == 0 and summary["skipped"] == 0
        assert summary["results"][0]["original_action_id"] == "other"
        assert len(email.actions) == 4


async def test_replay_without_stored_payload_is_422() -> None:
    async with serve(config={"audit_store_payload": False}) as (_, client):
        await client.post("/v1/dispatch", json=action(id="private"))
        assert_error(await client.post("/v1/audit/private/replay"), 422, "VALIDATION_ERROR", "no stored payload")
        summary = (await client.post("/v1/audit/replay")).json()
        assert summary == {"replayed": 0, "failed": 0, "skipped": 1, "results": []}


# ---------------------------------------------------------------------- dead-letter queue


DLQ_CONFIG = {"executor": {"max_retries": 1, "dlq_enabled": True, "retry": {"strategy": "constant", "base_ms": 1}}}


async def test_dlq_stats_and_drain() -> None:
    async with serve(providers=[FailingProvider("email", failures=None, message="down")], config=DLQ_CONFIG) as (
        _, client,
    ):
        assert (await client.get("/v1/dlq/stats")).json() == {"enabled": True, "count": 0}
        await client.post("/v1/dispatch", json=action(id="lost"))
        assert (await client.get("/v1/dlq/stats")).json() == {"enabled": True, "count": 1}
        drained = (await client.post("/v1/dlq/drain")).json()
        assert drained["count"] == 1
        entry = drained["entries"][0]
        assert {k: entry[k] for k in ("action_id", "namespace", "tenant", "provider", "action_type", "attempts")} == {
            "action_id": "lost", "namespace": "notifications", "tenant": "tenant-1", "provider": "email",
            "action_type": "send_email", "attempts": 2}
        assert "down" in entry["error"] and isinstance(entry["timestamp"], int)
        assert (await client.get("/v1/dlq/stats")).json()["count"] == 0


async def test_dlq_disabled(api: API) -> None:
    _, client = api
    assert (await client.get("/v1/dlq/stats")).json() == {"enabled": False, "count": 0}
    assert_error(await client.post("/v1/dlq/drain"), 404, "NOT_FOUND", "dead-letter queue is not enabled")


# ---------------------------------------------------------------------- circuit breakers


async def test_circuit_breakers_list_trip_reset() -> None:
    async with serve(circuit_breaker={"failure_threshold": 3}) as (_, client):
        listed = (await client.get("/admin/circuit-breakers")).json()["circuit_breakers"]
        assert [(b["provider"], b["state"], b["failure_threshold"]) for b in listed] == [
            ("email", "closed", 3), ("sms", "closed", 3)]
        tripped = await client.post("/admin/circuit-breakers/email/trip")
        assert tripped.json() == {"provider": "email", "state": "open", "message": "circuit breaker tripped"}
        outcome = Outcome.from_wire((await client.post("/v1/dispatch", json=action())).json())
        assert isinstance(outcome, CircuitOpen) and outcome.provider == "email"
        reset = await client.post("/admin/circuit-breakers/email/reset")
        assert reset.json() == {"provider": "email", "state": "closed", "message": "circuit breaker reset"}
        assert "Executed" in (await client.post("/v1/dispatch", json=action())).json()
        assert_error(await client.post("/admin/circuit-breakers/pager/trip"), 404, "NOT_FOUND",
                     "circuit breaker not found: pager")


async def test_circuit_breakers_disabled(api: API) -> None:
    _, client = api
    assert_error(await client.get("/admin/circuit-breakers"), 404, "NOT_FOUND", "circuit breakers are not enabled")
    assert_error(await client.post("/admin/circuit-breakers/email/reset"), 404, "NOT_FOUND",
                 "circuit breakers are not enabled")
