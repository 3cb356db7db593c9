"""Stored approval records and their public views (workflows.md §5.2, server-api.md §2.6)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from acteon._action import Action
from acteon._exceptions import ConfigurationError
from acteon._timefmt import coerce_datetime, format_rfc3339

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"  # acteon only: upstream lets the record vanish instead (D15)
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED)

CLAIM_SUFFIX = ":claim"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """The JSON stored at ``{ns}:{tenant}:approval:{id}`` (fields in upstream order)."""

    action: Action
    token: str
    rule: str
    created_at: datetime
    expires_at: datetime
    status: str = PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    message: str | None = None
    notification_sent: bool = False

    @property
    def expires_ts(self) -> int:
        """Expiry in Unix seconds, as carried (and signed) in the links."""
        return int(self.expires_at.timestamp())

    def to_json(self) -> str:
        return json.dumps(
            {
                "action": self.action.to_wire(),
                "token": self.token,
                "rule": self.rule,
                "created_at": format_rfc3339(self.created_at),
                "expires_at": format_rfc3339(self.expires_at),
                "status": self.status,
                "decided_by": self.decided_by,
                "decided_at": None if self.decided_at is None else format_rfc3339(self.decided_at),
                "message": self.message,
                "notification_sent": self.notification_sent,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> ApprovalRecord:
        """Parse a stored record; anything malformed is a ``corrupt approval record`` error (§12)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            status = data.get("status", PENDING)
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            decided_at = data.get("decided_at")
            return cls(
                action=Action.from_wire(data["action"]),
                token=str(data["token"]),
                rule=str(data.get("rule") or ""),
                created_at=coerce_datetime(data["created_at"]),
                expires_at=coerce_datetime(data["expires_at"]),
                status=status,
                decided_by=data.get("decided_by"),
                decided_at=None if decided_at is None else coerce_datetime(decided_at),
                message=data.get("message"),
                notification_sent=bool(data.get("notification_sent", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"corrupt approval record: {exc}") from exc

    def with_status(self, status: str, decided_at: datetime | None) -> ApprovalRecord:
        return replace(self, status=status, decided_at=decided_at)


@dataclass(frozen=True, slots=True)
class Approval:
    """An approval as the gateway reports it.

    ``status`` is ``pending``, ``approved``, ``rejected`` or ``expired``; a pending
    approval whose expiry has passed on the gateway clock reads as ``expired`` even
    before the background job has recorded it. ``action`` is the original action
    (for trusted Python callers); :meth:`to_dict` leaves it out, as the HTTP API does.
    """

    id: str
    namespace: str
    tenant: str
    status: str
    rule: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    message: str | None
    notification_sent: bool
    action: Action

    @classmethod
    def from_record(cls, record: ApprovalRecord, now: datetime) -> Approval:
        status = record.status
        if status == PENDING and now.timestamp() >= record.expires_ts:
            status = EXPIRED
        return cls(
            id=record.token,
            namespace=record.action.namespace,
            tenant=record.action.tenant,
            status=status,
            rule=record.rule,
            created_at=record.created_at,
            expires_at=record.expires_at,
            decided_at=record.decided_at,
            message=record.message,
            notification_sent=record.notification_sent,
            action=record.action,
        )

    def to_dict(self) -> dict[str, Any]:
        """The public status object of ``GET /v1/approvals/...`` (nulls kept)."""
        return {
            "token": self.id,
            "status": self.status,
            "rule": self.rule,
            "created_at": format_rfc3339(self.created_at),
            "expires_at": format_rfc3339(self.expires_at),
            "decided_at": None if self.decided_at is None else format_rfc3339(self.decided_at),
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ApprovalLinks:
    """Signed decision links of one approval (DECISIONS D15: one signature per decision)."""

    approval_id: str
    approve_url: str
    reject_url: str
    approve_sig: str
    reject_sig: str
    expires_at: int
    kid: str
