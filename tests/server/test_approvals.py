"""Approval routes: list, status, confirmation page, approve and reject over HTTP (§2.6 with D15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from acteon import AsyncGateway
from acteon.outcomes import Executed, Outcome, PendingApproval
from acteon.testing import FakeClock, RecordingProvider
from tests.server.conftest import action, assert_error, serve

pytestmark = pytest.mark.anyio

RULES = """\
rules:
  - name: big-refund
    condition: {field: action.action_type, eq: refund}
    action: {type: request_approval, notify_provider: chat, timeout_seconds: 3600, message: "Refund <over> $1000"}
"""

API = tuple[AsyncGateway, httpx.AsyncClient, FakeClock, RecordingProvider]


@pytest.fixture
async def approvals() -> AsyncIterator[API]:
    clock = FakeClock("2026-01-15T12:00:00Z")
    payments = RecordingProvider("payments")
    async with serve(rules=RULES, providers=[RecordingProvider("chat"), payments], clock=clock,
                     approval_keys=[{"id": "k1", "secret": "11" * 32}],
                     config={"external_url": "https://acteon.example.com"}) as (gw, client):
        yield gw, client, clock, payments


def path_of(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.path}?{parsed.query.decode()}"


async def pending(client: httpx.AsyncClient, **kw: Any) -> PendingApproval:
    response = await client.post("/v1/dispatch", json=action(provider="payments", action_type="refund",
                                                             namespace="shop", tenant="acme", **kw))
    outcome = Outcome.from_wire(response.json())
    assert isinstance(outcome, PendingApproval)
    return outcome


async def test_approve_link_executes_the_action(approvals: API) -> None:
    _, client, _, payments = approvals
    outcome = await pending(client)
    approve = path_of(outcome.approve_url)
    assert approve.startswith(f"/v1/approvals/shop/acme/{outcome.approval_id}/approve?")
    decided = await client.post(approve)
    assert decided.status_code == 200
    body = decided.json()
    assert body["id"] == outcome.approval_id and body["status"] == "approved"
    assert isinstance(Outcome.from_wire(body["outcome"]), Executed)
    assert len(payments.actions) == 1
    # Decided once: the second click is 410 Gone.
    assert_error(await client.post(approve), 410, "GONE", "approval already decided")


async def test_reject_link_runs_nothing(approvals: API) -> None:
    _, client, _, payments = approvals
    outcome = await pending(client)
    decided = await client.post(path_of(outcome.reject_url))
    assert decided.json() == {"id": outcome.approval_id, "status": "rejected", "outcome": None}
    assert payments.actions == []


async def test_status_and_list(approvals: API) -> None:
    _, client, _, _ = approvals
    outcome = await pending(client)
    status_path = path_of(outcome.approve_url).replace("/approve?", "?")
    status = (await client.get(status_path)).json()
    assert status["token"] == outcome.approval_id and status["status"] == "pending"
    assert status["rule"] == "big-refund" and "action" not in status
    listed = (await client.get("/v1/approvals", params={"namespace": "shop", "tenant": "acme"})).json()
    assert listed["count"] == 1 and listed["approvals"][0]["token"] == outcome.approval_id
    none = (await client.get("/v1/approvals", params={"namespace": "shop", "tenant": "acme", "status": "approved"}))
    assert none.json() == {"approvals": [], "count": 0}
    assert_error(await client.get("/v1/approvals", params={"namespace": "shop"}), 400, "BAD_REQUEST", "tenant")
    assert_error(await client.get("/v1/approvals", params={"namespace": "shop", "tenant": "acme", "status": "x"}),
                 400, "BAD_REQUEST", "status")
    assert_error(await client.get(f"/v1/approvals/shop/acme/{outcome.approval_id}"), 400, "BAD_REQUEST", "sig")


async def test_get_on_a_link_only_shows_a_confirmation_page(approvals: API) -> None:
    gw, client, _, payments = approvals
    outcome = await pending(client)
    page = await client.get(path_of(outcome.approve_url))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and "Refund &lt;over&gt; $1000" in page.text
    assert payments.actions == []
    approval = await gw.get_approval("shop", "acme", outcome.approval_id)
    assert approval is not None and approval.status == "pending"


async def test_forged_wrong_decision_and_expired_links_are_404(approvals: API) -> None:
    _, client, clock, payments = approvals
    outcome = await pending(client)
    approve = path_of(outcome.approve_url)
    forged = approve.replace("sig=", "sig=00")
    assert_error(await client.post(forged), 404, "NOT_FOUND", "approval not found or expired")
    assert_error(await client.get(forged), 404, "NOT_FOUND")
    # D15: the reject signature does not approve.
    reject_sig = httpx.URL(outcome.reject_url).params["sig"]
    swapped = path_of(str(httpx.URL(outcome.approve_url).copy_set_param("sig", reject_sig)))
    assert_error(await client.post(swapped), 404, "NOT_FOUND")
    clock.advance(3601)
    assert_error(await client.post(approve), 404, "NOT_FOUND", "approval not found or expired")
    assert payments.actions == []
