"""Builds the audit record of a dispatch (core-pipeline.md §5.6)."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any

from acteon._action import Action
from acteon._caller import Caller
from acteon._exceptions import RuleEvaluationError
from acteon._timefmt import format_rfc3339
from acteon.audit._model import AuditRecord
from acteon.outcomes import ChainStarted, Failed, Outcome


def fast_uuid7(now: datetime) -> str:
    """UUIDv7 text from the dispatch time (ms) and 74 random bits, without uuid.UUID.

    Record ids only need uniqueness and time order, not cryptographic randomness.
    """
    ms = int(now.timestamp() * 1000) & 0xFFFFFFFFFFFF
    r = _getrandbits(74)
    h = "%032x" % ((ms << 80) | _V7 | ((r >> 62) << 64) | _VARIANT | (r & _MASK62))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_getrandbits = random.SystemRandom().getrandbits if os.environ.get("ACTEON_SECURE_IDS") else random.getrandbits
_V7 = 0x7 << 76
_VARIANT = 0x2 << 62
_MASK62 = (1 << 62) - 1


def action_metadata(action: Action) -> dict[str, Any]:
    """Labels plus the system keys ``__dedup_key``, ``__fingerprint``, ... when set."""
    meta: dict[str, Any] = dict(action.metadata)
    if action.dedup_key is not None:
        meta["__dedup_key"] = action.dedup_key
    if action.fingerprint is not None:
        meta["__fingerprint"] = action.fingerprint
    if action.status is not None:
        meta["__status"] = action.status
    if action.starts_at is not None:
        meta["__starts_at"] = format_rfc3339(action.starts_at)
    if action.ends_at is not None:
        meta["__ends_at"] = format_rfc3339(action.ends_at)
    return meta


class AuditBuilder:
    __slots__ = ("store_payload", "ttl")

    def __init__(self, store_payload: bool, ttl_seconds: int | None) -> None:
        self.store_payload = store_payload
        self.ttl = None if ttl_seconds is None else timedelta(seconds=ttl_seconds)

    def build(
        self,
        action: Action,
        verdict: str,
        matched_rule: str | None,
        outcome: Outcome,
        dispatched_at: datetime,
        completed_at: datetime,
        started: float,
        caller: Caller | None,
    ) -> AuditRecord:
        return AuditRecord(
            id=fast_uuid7(dispatched_at),
            action_id=action.id,
            namespace=action.namespace,
            tenant=action.tenant,
            provider=action.provider,
            action_type=action.action_type,
            verdict=verdict,
            outcome=outcome.kind,
            dispatched_at=dispatched_at,
            completed_at=completed_at,
            chain_id=outcome.chain_id if type(outcome) is ChainStarted else None,
            matched_rule=matched_rule,
            action_payload=action.payload if self.store_payload else None,
            verdict_details={"verdict": verdict},
            outcome_details=outcome.details(),
            metadata=action_metadata(action),
            duration_ms=int((perf_counter() - started) * 1000),
            expires_at=None if self.ttl is None else dispatched_at + self.ttl,
            caller_id="" if caller is None else caller.id,
            auth_method="" if caller is None else caller.auth_method,
        )

    def build_error(
        self,
        action: Action,
        verdict: str,
        matched_rule: str | None,
        error: BaseException,
        dispatched_at: datetime,
        completed_at: datetime,
        started: float,
        caller: Caller | None,
    ) -> AuditRecord:
        """A dispatch that raised: outcome ``failed`` with the error in its details.

        The record is the one a :class:`~acteon.outcomes.Failed` outcome gets
        (code, message, not retryable, no attempts); a rule error also names
        the rule, as ``matched_rule`` and in the details, and the field.
        """
        if isinstance(error, RuleEvaluationError):
            failure = Failed("RULE_EVALUATION_ERROR", str(error))
            record = self.build(action, verdict, error.rule, failure, dispatched_at, completed_at, started, caller)
            record.outcome_details["rule"] = error.rule
            record.outcome_details["field"] = error.field
            return record
        failure = Failed("GATEWAY_ERROR", str(error))
        return self.build(action, verdict, matched_rule, failure, dispatched_at, completed_at, started, caller)
