"""Human approvals (workflows.md §5, §14 scenarios 39-46, DECISIONS D15) on memory stores.

Time is a FakeClock; background work runs through ``gw.tick()``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import pytest

from acteon import (
    Action,
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSignatureError,
    AsyncGateway,
    ConfigurationError,
    Gateway,
    UsageError,
)
from acteon.audit import AuditQuery, MemoryAuditStore
from acteon.outcomes import Executed, PendingApproval, Suppressed
from acteon.state import MemoryStateStore
from acteon.testing import FailingProvider, FakeClock, RecordingProvider
from acteon.workflows._signing import reference_message, signing_message

pytestmark = pytest.mark.anyio

SECRET_K1 = "11" * 32
SECRET_K2 = "22" * 32
T0 = "2026-01-15T12:00:00Z"

RULES = """
rules:
  - name: big-refund
    condition: {field: action.action_type, eq: process_refund}
    action: {type: request_approval, notify_provider: slack, timeout_seconds: 3600, message: "Refund over $1000"}
  - name: short-lived
    condition: {field: action.action_type, eq: quick}
    action: {type: request_approval, notify_provider: slack, timeout_seconds: 2}
"""


def refund(**overrides: Any) -> Action:
    data: dict[str, Any] = {"namespace": "ns", "tenant": "t1", "provider": "payments",
                            "action_type": "process_refund", "payload": {"amount": 1500}}
    data.update(overrides)
    return Action(**data)


def link_params(url: str) -> dict[str, str]:
    query = parse_qs(urlparse(url).query)
    return {"sig": query["sig"][0], "expires_at": query["expires_at"][0], "kid": query["kid"][0]}


class Env:
    def __init__(self, rules: str = RULES, keys: list[dict[str, Any]] | None = None,
                 slack: Any = None, state: MemoryStateStore | None = None, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock(T0)
        self.slack = slack or RecordingProvider("slack")
        self.payments = RecordingProvider("payments", response={"refunded": True})
        self.audit = MemoryAuditStore()
        self.state = state or MemoryStateStore()
        self.gw = AsyncGateway(
            rules=rules, state=self.state, audit=self.audit, providers=[self.slack, self.payments],
            clock=self.clock, background=False,
            approval_keys=keys if keys is not None else [{"id": "k1", "secret": SECRET_K1}],
            config={"external_url": "https://acteon.example.com"},
        )

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.gw.__aexit__(None, None, None)

    async def request(self, action: Action | None = None) -> PendingApproval:
        outcome = await self.gw.dispatch(action or refund())
        assert isinstance(outcome, PendingApproval)
        return outcome

    async def approve(self, pending: PendingApproval, **override: Any) -> Any:
        params = {**link_params(pending.approve_url), **override}
        return await self.gw.approve("ns", "t1", pending.approval_id, **params)

    async def reject(self, pending: PendingApproval, **override: Any) -> Any:
        params = {**link_params(pending.reject_url), **override}
        return await self.gw.reject("ns", "t1", pending.approval_id, **params)


# ----------------------------------------------------------------------------- scenario 39


async def test_happy_path_request_notify_approve_execute() -> None:
    async with Env() as env:
        events = env.gw.events()
        pending = await env.request()
        assert env.payments.calls == 0  # parked, not executed
        assert pending.notification_sent is True
        assert pending.expires_at is not None and pending.expires_at.isoformat() == "2026-01-15T13:00:00+00:00"
        approve, reject = link_params(pending.approve_url), link_params(pending.reject_url)
        assert approve["expires_at"] == reject["expires_at"] == str(int(env.clock.time()) + 3600)
        assert approve["kid"] == reject["kid"] == "k1"
        assert approve["sig"] != reject["sig"]  # D15: the decision is signed
        base = f"https://acteon.example.com/v1/approvals/ns/t1/{pending.approval_id}"
        assert pending.approve_url.startswith(base + "/approve?sig=")
        assert pending.reject_url.startswith(base + "/reject?sig=")

        note = env.slack.actions[0]
        assert note.action_type == "approval_notification" and note.provider == "slack"
        assert note.payload["subject"] == "Approval Required: process_refund"
        assert note.payload["body"] == (
            "Action 'process_refund' requires approval.\n\nReason: Refund over $1000\n\n"
            f"Approve: {pending.approve_url}\nReject: {pending.reject_url}"
        )
        assert note.payload["approval_url"] == pending.approve_url
        assert note.payload["reject_url"] == pending.reject_url
        assert {k: note.payload[k] for k in ("action_type", "namespace", "tenant", "expires_at")} == {
            "action_type": "process_refund", "namespace": "ns", "tenant": "t1", "expires_at": "2026-01-15T13:00:00Z"}

        stored = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert stored is not None and stored.status == "pending" and stored.notification_sent
        assert stored.to_dict() == {
            "token": pending.approval_id, "status": "pending", "rule": "big-refund",
            "created_at": "2026-01-15T12:00:00Z", "expires_at": "2026-01-15T13:00:00Z",
            "decided_at": None, "message": "Refund over $1000",
        }

        env.clock.advance(60)
        outcome = await env.approve(pending)
        assert isinstance(outcome, Executed) and outcome.response.body == {"refunded": True}
        assert env.payments.calls == 1 and env.payments.actions[0].payload == {"amount": 1500}
        record = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert record is not None and record.status == "approved"
        assert record.decided_at is not None and record.decided_at.isoformat() == "2026-01-15T12:01:00+00:00"

        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(event.to_dict())
        assert [e["type"] for e in seen] == [
            "approval_required", "action_dispatched", "approval_resolved", "action_dispatched"]
        assert seen[1]["outcome"]["PendingApproval"]["approve_url"] == "[redacted]"
        assert seen[2]["approval_id"] == pending.approval_id and seen[2]["decision"] == "approved"
        assert seen[3]["outcome"] == {"Executed": {"status": "success", "body": None, "headers": {}}}
        assert env.gw.metrics.pending_approval == 1 and env.gw.metrics.approvals_approved == 1


async def test_the_approved_execution_is_audited_like_any_dispatch() -> None:
    async with Env() as env:
        pending = await env.request()
        await env.approve(pending)
        page = await env.gw.audit_query(AuditQuery(action_type="process_refund"))
        outcomes = sorted(r.outcome for r in page.records)
        assert outcomes == ["executed", "pending_approval"]
        first = next(r for r in page.records if r.outcome == "pending_approval")
        assert first.matched_rule == "big-refund" and first.verdict == "request_approval"
        assert first.outcome_details == {"approval_id": pending.approval_id,
                                         "expires_at": "2026-01-15T13:00:00Z", "notification_sent": True}
        executed = next(r for r in page.records if r.outcome == "executed")
        assert executed.verdict == "request_approval" and executed.matched_rule == "big-refund"


async def test_stored_record_and_pending_index_have_the_upstream_shape() -> None:
    import json

    async with Env() as env:
        action = refund()
        pending = await env.request(action)
        raw = await env.state.get(f"ns:t1:approval:{pending.approval_id}")
        assert raw is not None
        record = json.loads(raw)
        assert list(record) == ["action", "token", "rule", "created_at", "expires_at", "status", "decided_by",
                                "decided_at", "message", "notification_sent"]
        assert record["action"] == action.to_wire()
        assert record["status"] == "pending" and record["notification_sent"] is True
        index = await env.state.get(f"ns:t1:pending_approvals:{action.id}")
        assert index is not None and json.loads(index) == {
            "token": pending.approval_id, "created_at": "2026-01-15T12:00:00Z", "expires_at": "2026-01-15T13:00:00Z"}


# ----------------------------------------------------------------------------- scenario 40


def test_signature_vector_and_byte_lengths() -> None:
    assert reference_message("payments", "tenant-1", "abc", 1767225600) == "8:payments\n8:tenant-1\n3:abc\n1767225600"
    assert reference_message("é", "t", "x", 1).startswith("2:é\n")
    # acteon's message extends upstream's with the decision and the key id (D15).
    message = signing_message("payments", "tenant-1", "abc", "approve", 1767225600, "k1")
    assert message == "8:payments\n8:tenant-1\n3:abc\n1767225600\n7:approve\n2:k1"


async def test_link_signature_is_hmac_sha256_of_the_documented_message() -> None:
    async with Env() as env:
        pending = await env.request()
        params = link_params(pending.approve_url)
        message = signing_message("ns", "t1", pending.approval_id, "approve", int(params["expires_at"]), "k1")
        expected = hmac.new(bytes.fromhex(SECRET_K1), message.encode(), hashlib.sha256).hexdigest()
        assert params["sig"] == expected


# ----------------------------------------------------------------------------- scenario 41


async def test_tampered_links_are_not_found() -> None:
    async with Env(keys=[{"id": "k1", "secret": SECRET_K1}, {"id": "k0", "secret": SECRET_K2}]) as env:
        pending = await env.request()
        params = link_params(pending.approve_url)
        with pytest.raises(ApprovalSignatureError) as info:
            await env.approve(pending, expires_at=int(params["expires_at"]) + 1)
        assert str(info.value) == "approval not found" and isinstance(info.value, ApprovalNotFound)
        assert "does not verify" in info.value.reason
        with pytest.raises(ApprovalNotFound):
            await env.approve(pending, kid="bad")
        with pytest.raises(ApprovalNotFound):  # k0 exists but did not sign this link
            await env.approve(pending, kid="k0")
        with pytest.raises(ApprovalNotFound):  # the reject signature cannot approve (D15)
            await env.approve(pending, sig=link_params(pending.reject_url)["sig"])
        with pytest.raises(ApprovalNotFound):
            await env.approve(pending, expires_at="soon")
        with pytest.raises(ApprovalNotFound):  # another approval's id
            await env.gw.approve("ns", "t1", "someone-else", **params)
        with pytest.raises(ApprovalNotFound):  # another tenant
            await env.gw.approve("ns", "t2", pending.approval_id, **params)
        assert env.payments.calls == 0
        # Without a kid every key is tried, and the link still works.
        outcome = await env.gw.approve("ns", "t1", pending.approval_id, sig=params["sig"],
                                       expires_at=params["expires_at"])
        assert isinstance(outcome, Executed)


# ----------------------------------------------------------------------------- scenario 42


async def test_key_rotation_old_kid_still_verifies_new_links_use_current_key() -> None:
    state = MemoryStateStore()
    clock = FakeClock(T0)
    async with Env(keys=[{"id": "k1", "secret": SECRET_K1}], state=state, clock=clock) as old:
        signed_by_k1 = await old.request()
        assert link_params(signed_by_k1.approve_url)["kid"] == "k1"
        another = await old.request()
    rotated = [{"id": "k2", "secret": SECRET_K2}, {"id": "k1", "secret": SECRET_K1}]
    async with Env(keys=rotated, state=state, clock=clock) as new:
        fresh = await new.request()
        assert link_params(fresh.approve_url)["kid"] == "k2"  # new links use the current key
        assert isinstance(await new.approve(signed_by_k1), Executed)  # old kid still verifies
        links = await new.gw.approval_links("ns", "t1", another.approval_id)  # re-signed with k2
        assert links.kid == "k2" and links.approve_sig != link_params(another.approve_url)["sig"]
        rejected = await new.gw.reject("ns", "t1", another.approval_id, sig=links.reject_sig,
                                       expires_at=links.expires_at, kid=links.kid)
        assert rejected.status == "rejected"
    async with Env(keys=[{"id": "k2", "secret": SECRET_K2}], state=state, clock=clock) as retired:
        with pytest.raises(ApprovalNotFound):  # k1 removed from the keyring: its links die
            await retired.approve(fresh, kid="k1")
        assert isinstance(await retired.approve(fresh), Executed)


# ----------------------------------------------------------------------------- scenario 43


async def test_double_decision_concurrent_update_then_decided_status() -> None:
    async with Env(rules=RULES.replace("timeout_seconds: 3600", "timeout_seconds: 172800")) as env:
        pending = await env.request()
        rejected = await env.reject(pending)
        assert rejected.status == "rejected"
        with pytest.raises(ApprovalAlreadyDecided, match=r"^approval already decided: concurrent update$"):
            await env.approve(pending)
        with pytest.raises(ApprovalAlreadyDecided, match="concurrent update"):
            await env.reject(pending)
        env.clock.advance(86_400 + 1)  # the claim has expired, the link has not
        with pytest.raises(ApprovalAlreadyDecided, match=r"^approval already decided: rejected$"):
            await env.approve(pending)
        assert env.payments.calls == 0


async def test_reject_is_recorded_audited_and_announced() -> None:
    async with Env() as env:
        events = env.gw.events(event_type="approval_resolved")
        pending = await env.request()
        env.clock.advance(30)
        approval = await env.reject(pending)
        assert approval.status == "rejected" and approval.decided_at == env.clock.now()
        assert env.payments.calls == 0
        event = events.get_nowait()
        assert event is not None and event.data == {"approval_id": pending.approval_id, "decision": "rejected"}
        page = await env.gw.audit_query(AuditQuery(outcome="approval_rejected"))
        assert len(page.records) == 1
        record = page.records[0]
        assert record.verdict == "request_approval" and record.matched_rule == "big-refund"
        assert record.outcome_details["approval_id"] == pending.approval_id
        assert env.gw.metrics.approvals_rejected == 1
        # A decided approval no longer expires.
        env.clock.advance(7200)
        assert (await env.gw.tick())["approval_expiry"] == 0


# ----------------------------------------------------------------------------- scenario 44


async def test_rules_changed_after_request_suppress_wins() -> None:
    async with Env() as env:
        pending = await env.request()
        env.gw.reload_rules(
            "rules:\n"
            "  - {name: freeze-refunds, priority: -1, condition: {field: action.action_type, eq: process_refund},"
            " action: {type: suppress}}\n" + RULES.split("rules:\n", 1)[1]
        )
        outcome = await env.approve(pending)
        assert outcome == Suppressed("freeze-refunds")
        assert env.payments.calls == 0
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and approval.status == "approved"


async def test_approved_action_is_not_parked_again_but_other_rules_apply() -> None:
    rules = RULES + """
  - name: to-backup
    priority: -1
    condition: {field: action.payload.reroute, eq: true}
    action: {type: reroute, target_provider: slack}
"""
    async with Env() as env:
        pending = await env.request(refund(payload={"amount": 5}))
        env.gw.reload_rules(rules.replace("payload.reroute", "payload.amount").replace("eq: true", "eq: 5"))
        outcome = await env.approve(pending)
        assert outcome.kind == "rerouted"
        assert env.slack.actions[-1].action_type == "process_refund"


async def test_approved_action_is_delivered_even_if_a_group_rule_now_matches() -> None:
    # §5.5: after approval, grouping (and state machines) do not hold the action again.
    async with Env() as env:
        pending = await env.request()
        env.gw.reload_rules(
            "rules:\n  - {name: batch, priority: -1, condition: {field: action.action_type, eq: process_refund},"
            " action: {type: group, group_by: [action_type]}}\n" + RULES.split("rules:\n", 1)[1]
        )
        outcome = await env.approve(pending)
        assert isinstance(outcome, Executed) and env.payments.calls == 1
        assert (await env.gw.dispatch(refund())).kind == "grouped"  # other refunds are grouped


async def test_a_payload_flag_cannot_skip_the_approval() -> None:
    async with Env() as env:
        sneaky = refund(payload={"_approved": True, "_approval_dispatch": True}, metadata={"approved": "true"})
        outcome = await env.gw.dispatch(sneaky)
        assert isinstance(outcome, PendingApproval) and env.payments.calls == 0


async def test_failed_execution_start_returns_the_approval_to_pending() -> None:
    async with Env() as env:
        pending = await env.request()
        env.gw.reload_rules(
            "rules:\n  - {name: broken, priority: -1, condition: {field: action.payload.amount, gt: 'x'},"
            " action: {type: suppress}}\n" + RULES.split("rules:\n", 1)[1]
        )
        with pytest.raises(Exception, match="type error"):
            await env.approve(pending)
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and approval.status == "pending"
        env.gw.reload_rules(RULES)
        assert isinstance(await env.approve(pending), Executed)  # the same link works again
        assert env.payments.calls == 1


# ----------------------------------------------------------------------------- scenario 45


async def test_notification_retry_sweep() -> None:
    slack = FailingProvider("slack", failures=None, kind="non_retryable")
    async with Env(slack=slack) as env:
        pending = await env.request()
        assert pending.notification_sent is False
        summary = await env.gw.tick()  # the sweep's first run: still failing
        assert summary["approval_notification_retry"] == 0
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and not approval.notification_sent

        env.gw.register_provider(working := RecordingProvider("slack"))
        env.clock.advance(10)
        assert (await env.gw.tick())["approval_notification_retry"] == 0  # not due: every 60 s
        env.clock.advance(60)
        assert (await env.gw.tick())["approval_notification_retry"] == 1
        assert working.calls == 1
        resent = working.actions[0].payload
        assert resent["subject"] == "Approval Required: process_refund"
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and approval.notification_sent
        env.clock.advance(60)
        assert (await env.gw.tick())["approval_notification_retry"] == 0  # nothing left to send
        assert working.calls == 1
        # The resent links work.
        outcome = await env.gw.approve("ns", "t1", pending.approval_id, **link_params(resent["approval_url"]))
        assert isinstance(outcome, Executed)


async def test_missing_notify_provider_is_not_an_error() -> None:
    rules = RULES.replace("notify_provider: slack, timeout_seconds: 3600", "notify_provider: pager, timeout_seconds: 3600")
    async with Env(rules=rules) as env:
        pending = await env.request()
        assert pending.notification_sent is False
        assert env.slack.calls == 0


async def test_retry_gives_up_when_rules_no_longer_ask_for_approval() -> None:
    slack = FailingProvider("slack", failures=None, kind="non_retryable")
    async with Env(slack=slack) as env:
        await env.request()
        env.gw.reload_rules("rules: []")
        env.clock.advance(120)
        assert (await env.gw.tick())["approval_notification_retry"] == 0
        assert slack.calls == 1


# ----------------------------------------------------------------------------- scenario 46 (D15)


async def test_expiry_by_the_clock_event_audit_and_status() -> None:
    async with Env() as env:
        events = env.gw.events(event_type="approval_expired")
        pending = await env.request(refund(action_type="quick"))
        env.clock.advance(1)
        assert (await env.gw.tick())["approval_expiry"] == 0
        env.clock.advance(2)  # T0+3 s, expiry was T0+2 s
        with pytest.raises(ApprovalExpired) as info:
            await env.approve(pending)
        assert str(info.value) == "approval not found" and "expired at" in info.value.reason
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and approval.status == "expired"  # the clock says so already
        assert (await env.gw.tick())["approval_expiry"] == 1
        assert (await env.gw.tick())["approval_expiry"] == 0  # fires once
        event = events.get_nowait()
        assert event is not None and event.type == "approval_expired"
        assert event.data == {"approval_id": pending.approval_id} and event.action_type == "quick"
        assert events.get_nowait() is None
        page = await env.gw.audit_query(AuditQuery(outcome="approval_expired"))
        assert len(page.records) == 1 and page.records[0].outcome_details["approval_id"] == pending.approval_id
        listed = await env.gw.list_approvals("ns", "t1", status="expired")
        assert [a.id for a in listed] == [pending.approval_id]
        with pytest.raises(ApprovalNotFound):
            await env.reject(pending)
        assert env.payments.calls == 0 and env.gw.metrics.approvals_expired == 1


async def test_expiry_job_ignores_other_kinds_in_the_shared_timeout_index() -> None:
    async with Env() as env:
        await env.state.index_timeout("ns:t1:my_custom_timer:x", 0)
        env.clock.advance(10)
        assert (await env.gw.tick())["approval_expiry"] == 0
        assert await env.state.get_expired_timeouts(int(env.clock.time() * 1000)) == ["ns:t1:my_custom_timer:x"]


async def test_expiry_of_an_approval_being_decided_waits_for_the_decision() -> None:
    async with Env() as env:
        pending = await env.request(refund(action_type="quick"))
        key = f"ns:t1:approval:{pending.approval_id}"
        await env.state.check_and_set(key + ":claim", "approved", 60)  # a decision in flight
        env.clock.advance(5)
        assert (await env.gw.tick())["approval_expiry"] == 0
        assert await env.state.get_expired_timeouts(int(env.clock.time() * 1000)) == [key]  # kept for later
        await env.state.delete(key + ":claim")  # that decision failed and gave the claim back
        assert (await env.gw.tick())["approval_expiry"] == 1


async def test_a_corrupt_record_does_not_block_other_expiries(caplog: pytest.LogCaptureFixture) -> None:
    async with Env() as env:
        await env.state.set("ns:t1:approval:broken", "{not json")
        await env.state.index_timeout("ns:t1:approval:broken", 0)
        pending = await env.request(refund(action_type="quick"))
        env.clock.advance(5)
        summary = await env.gw.tick()
        assert summary["approval_expiry"] == 1 and summary.ok
        assert "corrupt approval record" in caplog.text
        approval = await env.gw.get_approval("ns", "t1", pending.approval_id)
        assert approval is not None and approval.status == "expired"
        assert "ns:t1:approval:broken" not in await env.state.get_expired_timeouts(10**15)
        assert [a.id for a in await env.gw.list_approvals("ns", "t1")] == [pending.approval_id]


# ----------------------------------------------------------------------------- queries, keys, twins


async def test_list_and_get() -> None:
    async with Env() as env:
        first = await env.request()
        env.clock.advance(1)
        second = await env.request()
        await env.reject(second)
        other_tenant = await env.request(refund(tenant="t2"))
        everything = await env.gw.list_approvals("ns", "t1")
        assert [a.id for a in everything] == [first.approval_id, second.approval_id]
        assert [a.id for a in await env.gw.list_approvals("ns", "t1", status="pending")] == [first.approval_id]
        assert [a.id for a in await env.gw.list_approvals("ns", "t1", "rejected")] == [second.approval_id]
        assert [a.id for a in await env.gw.list_approvals("ns", "t2")] == [other_tenant.approval_id]
        with pytest.raises(UsageError, match="status must be one of"):
            await env.gw.list_approvals("ns", "t1", status="done")
        assert await env.gw.get_approval("ns", "t1", "nope") is None
        # With a link's signature, get_approval checks it (either decision's signature).
        params = link_params(first.reject_url)
        assert await env.gw.get_approval("ns", "t1", first.approval_id, sig=params["sig"],
                                         expires_at=params["expires_at"]) is not None
        assert await env.gw.get_approval("ns", "t1", first.approval_id, sig="00" * 32,
                                         expires_at=params["expires_at"]) is None
        with pytest.raises(ApprovalNotFound):
            await env.gw.approval_links("ns", "t1", "nope")


def test_key_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"approval_keys\[0\]: secret must be hex"):
        AsyncGateway(approval_keys=[{"id": "k1", "secret": "not hex"}])
    with pytest.raises(ConfigurationError, match=r"approval_keys\[1\]: key id 'k1' is used twice"):
        AsyncGateway(approval_keys=[{"id": "k1", "secret": "00"}, {"id": "k1", "secret": "01"}])
    with pytest.raises(ConfigurationError, match="at least one key"):
        AsyncGateway(approval_keys=[])
    with pytest.raises(ConfigurationError, match=r"approval_keys\[0\]: 'id'"):
        AsyncGateway(approval_keys=[{"secret": "00"}])


def test_keys_from_config_file_sections() -> None:
    gw = AsyncGateway.from_config({"server": {"approval_keys": [{"id": "k9", "secret": SECRET_K1}],
                                              "approval_secret": SECRET_K2}})
    assert [k.kid for k in gw._approvals.keyring.keys] == ["k9"]
    gw = AsyncGateway.from_config({"server": {"approval_secret": SECRET_K2}})
    assert gw._approvals.keyring.current.kid == "k0"
    assert gw._approvals.keyring.current.secret == bytes.fromhex(SECRET_K2)
    gw = AsyncGateway()
    assert gw._approvals.keyring.current.kid == "k0" and gw._approvals.keyring.random


def test_blocking_twin() -> None:
    slack, payments = RecordingProvider("slack"), RecordingProvider("payments")
    with Gateway(rules=RULES, providers=[slack, payments], background=False,
                 approval_keys=[{"id": "k1", "secret": SECRET_K1}]) as gw:
        pending = gw.dispatch(refund())
        assert isinstance(pending, PendingApproval)
        assert [a.status for a in gw.list_approvals("ns", "t1")] == ["pending"]
        links = gw.approval_links("ns", "t1", pending.approval_id)
        outcome = gw.approve("ns", "t1", pending.approval_id, sig=links.approve_sig,
                             expires_at=links.expires_at, kid=links.kid)
        assert isinstance(outcome, Executed) and payments.calls == 1
        got = gw.get_approval("ns", "t1", pending.approval_id)
        assert got is not None and got.status == "approved"
        second = gw.dispatch(refund())
        assert isinstance(second, PendingApproval)
        assert gw.reject("ns", "t1", second.approval_id, **link_params(second.reject_url)).status == "rejected"


async def test_concurrent_approvals_in_one_process_execute_once() -> None:
    async with Env() as env:
        pending = await env.request()
        results: list[Any] = []

        async def attempt() -> None:
            try:
                results.append(await env.approve(pending))
            except ApprovalAlreadyDecided as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(attempt)
        assert sum(isinstance(r, Executed) for r in results) == 1
        assert sum(isinstance(r, ApprovalAlreadyDecided) for r in results) == 9
        assert env.payments.calls == 1
