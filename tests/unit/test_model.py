"""Action and outcome wire forms (core-pipeline.md §1, DECISIONS D1-D3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from acteon import Action, OutcomeFailure, ProviderResponse
from acteon.outcomes import (
    ChainStarted,
    CircuitOpen,
    Deduplicated,
    DryRun,
    Executed,
    Failed,
    Grouped,
    Outcome,
    PendingApproval,
    QuotaExceeded,
    RecurringCreated,
    Rerouted,
    Scheduled,
    StateChanged,
    Suppressed,
    Throttled,
    sanitize_outcome_wire,
)

UPSTREAM_ACTION = json.loads("""
{"id":"5f0c1c1e-1111-4222-8333-444455556666","namespace":"notifications","tenant":"tenant-1","provider":"email",
 "action_type":"send_email","payload":{"to":"user@example.com"},"metadata":{"priority":"high"},
 "dedup_key":null,"status":null,"fingerprint":null,"starts_at":null,"ends_at":null,
 "created_at":"2026-02-10T14:30:00.123456Z","trace_context":{}}
""")


def test_action_round_trips_upstream_json_exactly() -> None:
    action = Action.model_validate(UPSTREAM_ACTION)
    assert action.to_wire() == UPSTREAM_ACTION
    assert list(action.to_wire()) == list(UPSTREAM_ACTION)


def test_action_lenient_input() -> None:
    action = Action.model_validate({"namespace": "n", "tenant": "t", "provider": "p", "action_type": "x",
                                    "metadata": {"labels": {"team": "ops"}}, "unknown": 1})
    assert action.payload == {} and action.metadata == {"team": "ops"}
    assert len(action.id) == 36 and action.created_at.tzinfo is not None
    wire = action.to_wire()
    assert wire["metadata"] == {"team": "ops"} and "unknown" not in wire
    assert wire["created_at"].endswith("Z")


def test_action_timestamps_accept_any_rfc3339_and_emit_z() -> None:
    data = dict(UPSTREAM_ACTION, created_at="2026-02-10T15:30:00.123456789+01:00",
                starts_at="2026-02-10T14:30:00+00:00")
    action = Action.model_validate(data)
    assert action.to_wire()["created_at"] == "2026-02-10T14:30:00.123456Z"
    assert action.to_wire()["starts_at"] == "2026-02-10T14:30:00Z"
    ms = dict(UPSTREAM_ACTION, created_at="2026-02-10T14:30:00.120Z")
    assert Action.model_validate(ms).to_wire()["created_at"] == "2026-02-10T14:30:00.120Z"


def test_action_rejects_non_string_labels_clearly() -> None:
    with pytest.raises(ValidationError, match="metadata label 'retries' must be a string"):
        Action.model_validate(dict(UPSTREAM_ACTION, metadata={"retries": 3}))
    with pytest.raises(ValidationError, match="namespace"):
        Action.model_validate({"tenant": "t", "provider": "p", "action_type": "x"})


def test_action_is_immutable_and_copyable() -> None:
    action = Action.model_validate(UPSTREAM_ACTION)
    with pytest.raises(ValidationError):
        action.tenant = "other"  # type: ignore[misc]
    copy = action.with_payload({"x": 1})
    assert copy.id == action.id and copy.payload == {"x": 1}


def test_dispatch_at_is_emitted_only_when_set() -> None:
    action = Action.model_validate(dict(UPSTREAM_ACTION, dispatch_at="2026-02-10T15:00:00Z"))
    assert action.to_wire()["dispatch_at"] == "2026-02-10T15:00:00Z"


NOW = datetime(2026, 2, 10, 14, 30, 0, 123000, tzinfo=UTC)

WIRE_EXAMPLES: list[tuple[Outcome, object]] = [
    (Executed(ProviderResponse("success", {"ok": True}, {})),
     {"Executed": {"status": "success", "body": {"ok": True}, "headers": {}}}),
    (Deduplicated(), "Deduplicated"),
    (Suppressed("block-spam"), {"Suppressed": {"rule": "block-spam"}}),
    (Rerouted("email", "sms", ProviderResponse.success({"id": 1})),
     {"Rerouted": {"original_provider": "email", "new_provider": "sms",
                   "response": {"status": "success", "body": {"id": 1}, "headers": {}}}}),
    (Throttled(timedelta(seconds=60)), {"Throttled": {"retry_after": {"secs": 60, "nanos": 0}}}),
    (Throttled(timedelta(seconds=1, milliseconds=500)), {"Throttled": {"retry_after": {"secs": 1, "nanos": 500000000}}}),
    (Failed("CONNECTION", "connection error: x", True, 4),
     {"Failed": {"code": "CONNECTION", "message": "connection error: x", "retryable": True, "attempts": 4}}),
    (Grouped("g1", 5, NOW), {"Grouped": {"group_id": "g1", "group_size": 5, "notify_at": "2026-02-10T14:30:00.123Z"}}),
    (StateChanged("fp", "open", "in_progress", True),
     {"StateChanged": {"fingerprint": "fp", "previous_state": "open", "new_state": "in_progress", "notify": True}}),
    (PendingApproval("a1", NOW, "http://x/approve", "http://x/reject", True),
     {"PendingApproval": {"approval_id": "a1", "expires_at": "2026-02-10T14:30:00.123Z",
                          "approve_url": "http://x/approve", "reject_url": "http://x/reject",
                          "notification_sent": True}}),
    (ChainStarted("c1", "search", 3, "search"),
     {"ChainStarted": {"chain_id": "c1", "chain_name": "search", "total_steps": 3, "first_step": "search"}}),
    (DryRun("allow", None, "email"), {"DryRun": {"verdict": "allow", "matched_rule": None, "would_be_provider": "email"}}),
    (DryRun("suppress", "block-spam", "email"),
     {"DryRun": {"verdict": "suppress", "matched_rule": "block-spam", "would_be_provider": "email"}}),
    (CircuitOpen("email", ["webhook", "sms"]), {"CircuitOpen": {"provider": "email", "fallback_chain": ["webhook", "sms"]}}),
    (CircuitOpen("email", []), {"CircuitOpen": {"provider": "email", "fallback_chain": []}}),
    (Scheduled("s1", NOW), {"Scheduled": {"action_id": "s1", "scheduled_for": "2026-02-10T14:30:00.123Z"}}),
    (RecurringCreated("r1", "0 9 * * MON-FRI", None),
     {"RecurringCreated": {"recurring_id": "r1", "cron_expr": "0 9 * * MON-FRI", "next_execution_at": None}}),
    (QuotaExceeded("tenant-1", 1000, 1001, "block"),
     {"QuotaExceeded": {"tenant": "tenant-1", "limit": 1000, "used": 1001, "overage_behavior": "block"}}),
]


@pytest.mark.parametrize("outcome,wire", WIRE_EXAMPLES, ids=lambda v: type(v).__name__)
def test_outcome_wire_round_trip(outcome: Outcome, wire: object) -> None:
    assert outcome.to_wire() == wire
    parsed = Outcome.from_wire(json.loads(json.dumps(wire)))
    assert parsed == outcome and type(parsed) is type(outcome)


def test_outcome_kinds() -> None:
    kinds = {type(o).__name__: o.kind for o, _ in WIRE_EXAMPLES}
    assert kinds["Executed"] == "executed" and kinds["PendingApproval"] == "pending_approval"
    assert kinds["QuotaExceeded"] == "quota_exceeded" and kinds["DryRun"] == "dry_run"


def test_circuit_open_fallback_chain_defaults_to_empty() -> None:
    assert Outcome.from_wire({"CircuitOpen": {"provider": "email"}}) == CircuitOpen("email", [])


def test_unknown_outcome_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="unknown outcome variant `Exploded`"):
        Outcome.from_wire("Exploded")
    with pytest.raises(Exception, match="invalid Suppressed outcome"):
        Outcome.from_wire({"Suppressed": {}})


def test_raise_for_failure() -> None:
    Executed().raise_for_failure()
    with pytest.raises(OutcomeFailure, match="CONNECTION"):
        Failed("CONNECTION", "down", True, 1).raise_for_failure()
    with pytest.raises(OutcomeFailure, match="circuit open"):
        CircuitOpen("email").raise_for_failure()


def test_audit_details_match_upstream() -> None:
    assert Executed(ProviderResponse.failure(None)).details() == {"status": "Failure"}
    assert Throttled(timedelta(seconds=60)).details() == {"retry_after_secs": 60}
    assert Deduplicated().details() == {}
    assert set(PendingApproval("a", NOW, "u", "v", True).details()) == {"approval_id", "expires_at",
                                                                       "notification_sent"}
    assert Rerouted("a", "b").details() == {"original_provider": "a", "new_provider": "b"}


def test_sanitised_outcome() -> None:
    assert sanitize_outcome_wire(Executed(ProviderResponse.success({"secret": 1}))) == {
        "Executed": {"status": "success", "body": None, "headers": {}}}
    approval = sanitize_outcome_wire(PendingApproval("a", NOW, "u", "v", True))
    assert approval["PendingApproval"]["approve_url"] == "[redacted]"
