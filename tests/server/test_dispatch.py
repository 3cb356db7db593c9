"""Health, metrics, dispatch, batch and the D5 error bodies of the HTTP API."""

from __future__ import annotations

import json

import httpx
import pytest

from acteon import AsyncGateway
from acteon.outcomes import Executed, Failed, Outcome, Rerouted, Suppressed
from acteon.server import ROUTE_TABLE
from acteon.server._http import MAX_BODY_BYTES
from tests.server.conftest import action, assert_error

pytestmark = pytest.mark.anyio

API = tuple[AsyncGateway, httpx.AsyncClient]


async def test_health_and_metrics_report_the_counters(api: API) -> None:
    gw, client = api
    await client.post("/v1/dispatch", json=action())
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    keys = list(body["metrics"])
    # Upstream key order first (§2.1), then the port's extra counters.
    assert keys[:7] == ["dispatched", "executed", "deduplicated", "suppressed", "rerouted", "throttled", "failed"]
    assert body["metrics"]["dispatched"] == 1 and body["metrics"]["executed"] == 1
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and set(metrics.json()) == set(gw.metrics.snapshot())
    assert metrics.json()["dispatched"] == 1


async def test_dispatch_outcomes_round_trip_through_from_wire(api: API) -> None:
    gw, client = api
    executed = await client.post("/v1/dispatch", json=action())
    assert executed.status_code == 200
    assert isinstance(Outcome.from_wire(executed.json()), Executed)
    suppressed = await client.post("/v1/dispatch", json=action(action_type="spam"))
    assert Outcome.from_wire(suppressed.json()) == Suppressed("block-spam")
    rerouted = Outcome.from_wire((await client.post("/v1/dispatch", json=action(action_type="urgent"))).json())
    assert isinstance(rerouted, Rerouted) and rerouted.new_provider == "sms"
    # A business failure is still HTTP 200 (the outcome says what went wrong).
    missing = await client.post("/v1/dispatch", json=action(provider="pager"))
    assert missing.status_code == 200
    failed = Outcome.from_wire(missing.json())
    assert isinstance(failed, Failed) and failed.code == "PROVIDER_NOT_FOUND"
    assert gw.metrics.dispatched == 4


async def test_dispatch_keeps_the_client_id_and_generates_a_missing_one(api: API) -> None:
    gw, client = api
    await client.post("/v1/dispatch", json=action(id="client-id-1"))
    record = await gw.audit_get("client-id-1")
    assert record is not None and record.caller_id == "" and record.auth_method == "anonymous"
    response = await client.post("/v1/dispatch", json=action())
    assert response.status_code == 200
    assert (await gw.audit_query({"limit": 10})).total == 2


async def test_dry_run_executes_nothing(api: API) -> None:
    gw, client = api
    response = await client.post("/v1/dispatch", params={"dry_run": "true"}, json=action(action_type="urgent"))
    assert response.status_code == 200
    assert response.json() == {"DryRun": {"verdict": "reroute", "matched_rule": "to-sms", "would_be_provider": "sms"}}
    assert gw.metrics.dispatched == 0
    assert (await gw.audit_query({})).total == 0
    explicit_false = await client.post("/v1/dispatch", params={"dry_run": "false"}, json=action())
    assert "Executed" in explicit_false.json()
    assert_error(await client.post("/v1/dispatch", params={"dry_run": "yes"}, json=action()),
                 400, "BAD_REQUEST", "dry_run")


async def test_dispatch_validation_errors(api: API) -> None:
    _, client = api
    body = assert_error(await client.post("/v1/dispatch", json={"namespace": "n"}), 422, "VALIDATION_ERROR")
    assert "tenant" in body["message"] and "provider" in body["message"]
    assert_error(await client.post("/v1/dispatch", json=[action()]), 422, "VALIDATION_ERROR", "JSON object")
    assert_error(await client.post("/v1/dispatch", json=action(metadata={"n": 1})), 422, "VALIDATION_ERROR",
                 "metadata")
    assert_error(await client.post("/v1/dispatch", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "BAD_REQUEST", "JSON")
    assert_error(await client.post("/v1/dispatch", content=b"", headers={"content-type": "application/json"}),
                 400, "BAD_REQUEST", "empty")
    assert_error(await client.post("/v1/dispatch", content=json.dumps(action()), headers={"content-type": "text/plain"}),
                 415, "UNSUPPORTED_MEDIA_TYPE", "application/json")
    assert_error(await client.post("/v1/dispatch", content=json.dumps(action())), 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_body_over_two_mib_is_413(api: API) -> None:
    _, client = api
    big = json.dumps(action(payload={"blob": "x" * MAX_BODY_BYTES}))
    response = await client.post("/v1/dispatch", content=big, headers={"content-type": "application/json"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_unknown_routes_and_methods_are_json(api: API) -> None:
    _, client = api
    assert_error(await client.get("/v1/nope"), 404, "NOT_FOUND", "/v1/nope")
    # Endpoints of the upstream table this server does not have yet are plain 404s.
    assert_error(await client.get("/v1/chains", params={"namespace": "n", "tenant": "t"}), 404, "NOT_FOUND")
    assert_error(await client.get("/v1/subscribe/chain/c1"), 404, "NOT_FOUND")
    wrong = await client.get("/v1/dispatch")
    assert_error(wrong, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in wrong.headers["allow"]
    assert_error(await client.delete("/health"), 405, "METHOD_NOT_ALLOWED")
    assert ("POST", "/v1/dispatch") in ROUTE_TABLE


async def test_gateway_errors_are_500_with_a_code(api: API) -> None:
    gw, client = api
    gw.reload_rules("rules:\n  - {name: away, condition: {field: action.action_type, eq: go}, "
                    "action: {type: reroute, target_provider: nowhere}}\n")
    body = assert_error(await client.post("/v1/dispatch", json=action(action_type="go")), 500, "INTERNAL")
    assert "nowhere" in body["message"]


async def test_batch_keeps_order_and_isolates_bad_items(api: API) -> None:
    _, client = api
    items = [action(action_type="spam"), {"namespace": "n"}, action(), action(action_type="go-nowhere")]
    response = await client.post("/v1/dispatch/batch", json=items)
    assert response.status_code == 200
    results = response.json()
    assert len(results) == 4
    assert Outcome.from_wire(results[0]) == Suppressed("block-spam")
    # D4: a malformed item answers with an error object; the others still run.
    assert results[1]["error"]["code"] == "VALIDATION_ERROR" and results[1]["error"]["retryable"] is False
    assert "action [1]" in results[1]["error"]["message"]
    assert isinstance(Outcome.from_wire(results[2]), Executed)
    assert isinstance(Outcome.from_wire(results[3]), Executed)


async def test_batch_item_gateway_error_is_an_error_object(api: API) -> None:
    gw, client = api
    gw.reload_rules("rules:\n  - {name: away, condition: {field: action.action_type, eq: go}, "
                    "action: {type: reroute, target_provider: nowhere}}\n")
    results = (await client.post("/v1/dispatch/batch", json=[action(action_type="go"), action()])).json()
    assert results[0]["error"]["code"] == "INTERNAL" and "nowhere" in results[0]["error"]["message"]
    assert isinstance(Outcome.from_wire(results[1]), Executed)


async def test_batch_dry_run_and_shape_errors(api: API) -> None:
    gw, client = api
    results = (await client.post("/v1/dispatch/batch?dry_run=true", json=[action(), action(action_type="spam")])).json()
    assert [next(iter(r)) for r in results] == ["DryRun", "DryRun"]
    assert gw.metrics.dispatched == 0
    assert_error(await client.post("/v1/dispatch/batch", json={"actions": [action()]}), 422, "VALIDATION_ERROR",
                 "JSON array")
    assert (await client.post("/v1/dispatch/batch", json=[])).json() == []


def test_unreachable_backend_maps_to_503() -> None:
    from acteon._exceptions import StateConnectionError, StateTimeout
    from acteon.server._app import _gateway_failure

    down = _gateway_failure(StateConnectionError("redis is down"))
    assert (down.status, down.code) == (503, "UNAVAILABLE")
    slow = _gateway_failure(StateTimeout(1.0))
    assert (slow.status, slow.code) == (500, "INTERNAL")
