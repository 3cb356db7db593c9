"""Audit records, queries, pages and the keyset cursor (state-audit.md B1-B4)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from acteon._exceptions import AuditSerializationError
from acteon._timefmt import coerce_datetime, format_rfc3339

INTENT_OUTCOME = "pending"


@dataclass(slots=True)
class AuditRecord:
    """One audited dispatch attempt. JSON keys come out in field order."""

    id: str
    action_id: str
    namespace: str
    tenant: str
    provider: str
    action_type: str
    verdict: str
    outcome: str
    dispatched_at: datetime
    completed_at: datetime
    chain_id: str | None = None
    matched_rule: str | None = None
    action_payload: Any = None
    verdict_details: Any = field(default_factory=dict)
    outcome_details: Any = field(default_factory=dict)
    metadata: Any = field(default_factory=dict)
    duration_ms: int = 0
    expires_at: datetime | None = None
    caller_id: str = ""
    auth_method: str = ""
    record_hash: str | None = None
    previous_hash: str | None = None
    sequence_number: int | None = None
    attachment_metadata: list[Any] = field(default_factory=list)
    signature: str | None = None
    signer_id: str | None = None
    kid: str | None = None
    canonical_hash: str | None = None

    @property
    def dispatched_at_ms(self) -> int:
        return _ms(self.dispatched_at)

    def is_intent(self) -> bool:
        return self.outcome == INTENT_OUTCOME

    def to_dict(self) -> dict[str, Any]:
        """The upstream JSON object (B1 order; ``attachment_metadata`` omitted when empty)."""
        out: dict[str, Any] = {}
        for name in _WIRE_ORDER:
            value = getattr(self, name)
            if name in ("dispatched_at", "completed_at", "expires_at"):
                value = None if value is None else format_rfc3339(value)
            elif name == "attachment_metadata":
                if not value:
                    continue
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        try:
            kwargs: dict[str, Any] = {}
            for f in fields(cls):
                if f.name not in data:
                    continue
                value = data[f.name]
                if f.name in ("dispatched_at", "completed_at"):
                    value = coerce_datetime(value)
                elif f.name == "expires_at":
                    value = None if value is None else coerce_datetime(value)
                elif f.name in ("caller_id", "auth_method") and value is None:
                    value = ""
                elif f.name == "attachment_metadata" and value is None:
                    value = []
                kwargs[f.name] = value
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise AuditSerializationError(f"invalid audit record: {exc}") from exc


_WIRE_ORDER = (
    "id", "action_id", "chain_id", "namespace", "tenant", "provider", "action_type", "verdict",
    "matched_rule", "outcome", "action_payload", "verdict_details", "outcome_details", "metadata",
    "dispatched_at", "completed_at", "duration_ms", "expires_at", "caller_id", "auth_method",
    "record_hash", "previous_hash", "sequence_number", "attachment_metadata", "signature",
    "signer_id", "kid", "canonical_hash",
)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000) if value.microsecond % 1000 == 0 else (
        int(value.timestamp()) * 1000 + value.microsecond // 1000
    )


@dataclass(slots=True)
class AuditQuery:
    """Filters and paging for :meth:`AuditStore.query` (B2). ``from_`` is the ``from`` bound."""

    namespace: str | None = None
    tenant: str | None = None
    provider: str | None = None
    action_type: str | None = None
    outcome: str | None = None
    verdict: str | None = None
    matched_rule: str | None = None
    caller_id: str | None = None
    chain_id: str | None = None
    signer_id: str | None = None
    kid: str | None = None
    action_id: str | None = None
    from_: datetime | None = None
    to: datetime | None = None
    limit: int | None = None
    offset: int | None = None
    cursor: str | None = None
    sort_by_sequence_asc: bool = False
    sort_by_sequence_desc: bool = False
    tenant_scope: list[str] = field(default_factory=list)

    EQUALITY_FIELDS = (
        "namespace", "tenant", "provider", "action_type", "outcome", "verdict", "matched_rule",
        "caller_id", "chain_id", "signer_id", "kid", "action_id",
    )

    @property
    def effective_limit(self) -> int:
        return max(1, min(1000, self.limit if self.limit else 50)) if self.limit != 0 else 1

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AuditQuery:
        """Build from HTTP-style parameters (``from``/``to`` RFC 3339, ints as strings)."""
        q = cls()
        for name in cls.EQUALITY_FIELDS:
            if params.get(name) is not None:
                setattr(q, name, str(params[name]))
        if params.get("from") is not None:
            q.from_ = coerce_datetime(params["from"])
        if params.get("to") is not None:
            q.to = coerce_datetime(params["to"])
        for name in ("limit", "offset"):
            if params.get(name) is not None:
                setattr(q, name, int(params[name]))
        if params.get("cursor"):
            q.cursor = str(params["cursor"])
        for name in ("sort_by_sequence_asc", "sort_by_sequence_desc"):
            value = params.get(name)
            if value is not None:
                setattr(q, name, value is True or str(value).lower() in ("1", "true", "yes"))
        return q

    def matches(self, record: AuditRecord) -> bool:
        """Filter predicate shared by in-process backends (not paging)."""
        for name in self.EQUALITY_FIELDS:
            wanted = getattr(self, name)
            if wanted is not None and getattr(record, name) != wanted:
                return False
        if self.tenant_scope and not any(tenant_covered_by(p, record.tenant) for p in self.tenant_scope):
            return False
        if self.from_ is not None and record.dispatched_at < self.from_:
            return False
        if self.to is not None and record.dispatched_at > self.to:
            return False
        return True


def latest_of_action(records: list[AuditRecord]) -> AuditRecord | None:
    """The record ``get_by_action_id`` answers with among one action's records.

    The latest ``dispatched_at`` wins; on a tie a non-intent record beats the
    intent, then the higher ``sequence_number``, then the later ``completed_at``.
    """
    if not records:
        return None
    return max(
        records,
        key=lambda r: (
            r.dispatched_at,
            not r.is_intent(),
            r.sequence_number if r.sequence_number is not None else -1,
            r.completed_at,
        ),
    )


def tenant_covered_by(pattern: str, tenant: str) -> bool:
    """``acme`` covers ``acme`` and ``acme.prod``, not ``acmecorp`` or ``acme.`` (B2)."""
    if tenant == pattern:
        return True
    return len(tenant) > len(pattern) + 1 and tenant.startswith(pattern + ".")


@dataclass(slots=True)
class AuditPage:
    records: list[AuditRecord]
    total: int | None
    limit: int
    offset: int
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": [r.to_dict() for r in self.records]}
        if self.total is not None:
            out["total"] = self.total
        out["limit"] = self.limit
        out["offset"] = self.offset
        if self.next_cursor is not None:
            out["next_cursor"] = self.next_cursor
        return out


# ------------------------------------------------------------------------- cursor

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Cursor:
    kind: str  # "ts" or "seq"
    id: str
    ts_ms: int | None = None
    seq: int | None = None

    def encode(self) -> str:
        body: dict[str, Any] = {"v": 1, "k": self.kind}
        if self.kind == "ts":
            body["t"] = self.ts_ms
            body["i"] = self.id
        else:
            body["i"] = self.id
            if self.seq is not None:
                body["s"] = self.seq
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not _B64URL.match(text) or len(text) % 4 == 1:
            raise AuditSerializationError("cursor decode: invalid base64url text")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuditSerializationError(f"cursor decode: {exc}") from exc
        if not isinstance(body, dict):
            raise AuditSerializationError("cursor decode: not an object")
        if body.get("v") != 1:
            raise AuditSerializationError(f"unsupported cursor version: {body.get('v')}")
        kind = body.get("k")
        if kind == "ts" and isinstance(body.get("t"), int) and isinstance(body.get("i"), str):
            return cls("ts", body["i"], ts_ms=body["t"])
        if kind == "seq" and isinstance(body.get("i"), str):
            seq = body.get("s")
            return cls("seq", body["i"], seq=seq if isinstance(seq, int) else None)
        raise AuditSerializationError("cursor decode: missing or invalid fields")

    @classmethod
    def after(cls, record: AuditRecord, by_sequence: bool) -> Cursor:
        if by_sequence:
            return cls("seq", record.id, seq=record.sequence_number)
        return cls("ts", record.id, ts_ms=record.dispatched_at_ms)


def check_cursor_kind(cursor: Cursor, query: AuditQuery) -> None:
    if cursor.kind == "ts" and query.sort_by_sequence_asc:
        raise AuditSerializationError("cursor kind 'ts' does not match sort_by_sequence_asc=true")
    if cursor.kind == "seq" and not query.sort_by_sequence_asc:
        raise AuditSerializationError("cursor kind 'seq' requires sort_by_sequence_asc=true")


# ------------------------------------------------------------------------- in-process ordering and paging

_NO_SEQUENCE = 2**63  # ascending order puts records without a sequence number after all others


def _seq_asc_key(r: AuditRecord) -> tuple[int, str]:
    return (r.sequence_number if r.sequence_number is not None else _NO_SEQUENCE, r.id)


def sort_by_sequence(rows: list[AuditRecord], query: AuditQuery, cursor: Cursor | None) -> list[AuditRecord]:
    """``rows`` in ``(sequence_number, id)`` order, ascending when ``sort_by_sequence_asc``
    (it wins over ``_desc``) else descending, NULL last either way. An ascending
    cursor drops what earlier pages held."""
    if query.sort_by_sequence_asc:
        rows.sort(key=_seq_asc_key)
        if cursor is not None:
            after = (cursor.seq if cursor.seq is not None else _NO_SEQUENCE, cursor.id)
            rows = [r for r in rows if _seq_asc_key(r) > after]
    else:
        rows.sort(key=lambda r: (r.sequence_number if r.sequence_number is not None else -1, r.id), reverse=True)
        # NULL sequence numbers sort last.
        rows.sort(key=lambda r: r.sequence_number is None)
    return rows


def cut_page(
    rows: list[AuditRecord], query: AuditQuery, limit: int, cursor: Cursor | None, cursor_by_sequence: bool | None
) -> AuditPage:
    """The page of sorted ``rows`` (already past ``cursor``): ``offset`` and ``total`` only
    on a first page, and a ``next_cursor`` (by sequence or by time) when more rows
    follow, unless ``cursor_by_sequence`` is ``None`` (an order that is not paginated)."""
    total: int | None = None
    offset = 0
    if cursor is None:
        total = len(rows)
        offset = max(0, query.offset or 0)
        rows = rows[offset:]
    page = rows[: limit + 1]
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        if cursor_by_sequence is not None:
            next_cursor = Cursor.after(page[-1], cursor_by_sequence).encode()
    return AuditPage(page, total, limit, offset, next_cursor)
