"""Row conversion and SQL text of the SQLite audit store (``acteon.audit.sqlite``).

Rows hold the B1 fields with JSON as compact text and timestamps as RFC 3339 text;
integer columns ``dispatched_at_ms`` (sort and cursor key, D20), ``dispatched_at_us``
(exact ``from``/``to`` bounds) and ``expires_at_ms`` (cleanup) sit next to them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from acteon._exceptions import AuditError, AuditSerializationError, AuditStorageError
from acteon._timefmt import coerce_datetime, format_rfc3339
from acteon.audit._model import AuditRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# Stored columns, in INSERT order; the first 28 are the B1 fields.
_FIELDS = (
    "id", "action_id", "chain_id", "namespace", "tenant", "provider", "action_type", "verdict",
    "matched_rule", "outcome", "action_payload", "verdict_details", "outcome_details", "metadata",
    "dispatched_at", "completed_at", "duration_ms", "expires_at", "caller_id", "auth_method",
    "record_hash", "previous_hash", "sequence_number", "attachment_metadata", "signature",
    "signer_id", "kid", "canonical_hash",
)
_COLUMNS = (*_FIELDS, "dispatched_at_ms", "dispatched_at_us", "expires_at_ms")
_SELECT = ", ".join(_FIELDS)


def _make_encode() -> Callable[[Any], str]:
    """Compact, non-ASCII-escaping JSON text, as ``JSONEncoder(separators=(",", ":"),
    ensure_ascii=False).encode`` writes it.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs more
    than encoding a small record dict; this one is built once (a third of the time
    per value, four values per record). It keeps no circular-reference table, so a
    value that contains itself ends in ``RecursionError`` instead of ``ValueError``;
    the writer rejects that record like any other value it cannot encode.
    """
    slow = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - interpreters without the C accelerator
        return slow
    encoder = make(
        None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(encoder(value, 0))

    return encode


_encode = _make_encode()


def _dumps(value: Any) -> str:
    """Compact JSON; the common empty containers without calling the encoder."""
    if not value and isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return _encode(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _us(value: datetime) -> int:
    """Exact epoch microseconds."""
    return (_utc(value) - _EPOCH) // _ONE_US


def _ceil_ms(value: datetime) -> int:
    # Rounded up, so cleanup never deletes a record before its expiry instant.
    return -(-_us(value) // 1000)


def _fmt(value: datetime) -> str:
    """The B1 text form (same as ``format_rfc3339``), fast for UTC datetimes."""
    if value.tzinfo is UTC:
        us = value.microsecond
        spec = "seconds" if us == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"
        return value.isoformat(timespec=spec)[:-6] + "Z"
    return format_rfc3339(value)


def _to_row(r: AuditRecord) -> tuple[Any, ...]:
    expires = r.expires_at
    dispatched_us = _us(r.dispatched_at)
    return (
        r.id, r.action_id, r.chain_id, r.namespace, r.tenant, r.provider, r.action_type, r.verdict,
        r.matched_rule, r.outcome,
        None if r.action_payload is None else _dumps(r.action_payload),
        _dumps(r.verdict_details), _dumps(r.outcome_details), _dumps(r.metadata),
        _fmt(r.dispatched_at), _fmt(r.completed_at), int(r.duration_ms),
        None if expires is None else _fmt(expires),
        r.caller_id or "", r.auth_method or "", r.record_hash, r.previous_hash, r.sequence_number,
        _dumps(r.attachment_metadata or []), r.signature, r.signer_id, r.kid, r.canonical_hash,
        # Same value as r.dispatched_at_ms for any post-1970 time, without a second conversion.
        dispatched_us // 1000 if dispatched_us >= 0 else r.dispatched_at_ms, dispatched_us,
        None if expires is None else _ceil_ms(expires),
    )


def _dt(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # pragma: no cover - rows written by other tools
        return coerce_datetime(text)


def _from_row(row: tuple[Any, ...]) -> AuditRecord:
    return AuditRecord(
        id=row[0], action_id=row[1], chain_id=row[2], namespace=row[3], tenant=row[4],
        provider=row[5], action_type=row[6], verdict=row[7], matched_rule=row[8], outcome=row[9],
        action_payload=None if row[10] is None else json.loads(row[10]),
        verdict_details=json.loads(row[11]), outcome_details=json.loads(row[12]),
        metadata=json.loads(row[13]), dispatched_at=_dt(row[14]), completed_at=_dt(row[15]),
        duration_ms=row[16], expires_at=None if row[17] is None else _dt(row[17]),
        caller_id=row[18], auth_method=row[19], record_hash=row[20], previous_hash=row[21],
        sequence_number=row[22], attachment_metadata=json.loads(row[23]), signature=row[24],
        signer_id=row[25], kid=row[26], canonical_hash=row[27],
    )


# Errors that belong to one row (the rest of its batch can still be written).
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError)


def _row_error(exc: BaseException, row: tuple[Any, ...]) -> AuditError:
    if isinstance(exc, sqlite3.IntegrityError):
        return _unique_error(exc, row)
    return AuditSerializationError(f"audit record {row[0]}: {exc}")


def _unique_error(exc: sqlite3.IntegrityError, row: tuple[Any, ...]) -> AuditStorageError:
    text = str(exc)
    if "sequence_number" in text:
        what = f"duplicate sequence_number {row[22]} for {row[3]}/{row[4]}"
    elif text.endswith("audit.id"):
        what = f"duplicate id {row[0]}"
    else:
        what = f"record {row[0]}"
    return AuditStorageError(f"unique constraint violation: {what} ({text})")


class _SQL:
    def __init__(self, p: str) -> None:
        t = f"{p}audit"
        self.table = t
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "id TEXT PRIMARY KEY, action_id TEXT NOT NULL, chain_id TEXT, namespace TEXT NOT NULL,"
            " tenant TEXT NOT NULL, provider TEXT NOT NULL, action_type TEXT NOT NULL,"
            " verdict TEXT NOT NULL, matched_rule TEXT, outcome TEXT NOT NULL, action_payload TEXT,"
            " verdict_details TEXT NOT NULL, outcome_details TEXT NOT NULL,"
            " metadata TEXT NOT NULL DEFAULT '{}', dispatched_at TEXT NOT NULL,"
            " completed_at TEXT NOT NULL, duration_ms INTEGER NOT NULL, expires_at TEXT,"
            " caller_id TEXT NOT NULL DEFAULT '', auth_method TEXT NOT NULL DEFAULT '',"
            " record_hash TEXT, previous_hash TEXT, sequence_number INTEGER,"
            " attachment_metadata TEXT NOT NULL DEFAULT '[]', signature TEXT, signer_id TEXT,"
            " kid TEXT, canonical_hash TEXT, dispatched_at_ms INTEGER NOT NULL,"
            " dispatched_at_us INTEGER NOT NULL, expires_at_ms INTEGER)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_time ON {t} (dispatched_at_ms DESC, id DESC)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_ns_tenant_time"
            f" ON {t} (namespace, tenant, dispatched_at_ms DESC, id DESC)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_outcome ON {t} (outcome, dispatched_at_ms DESC)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_provider ON {t} (provider, dispatched_at_ms DESC)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_action_id ON {t} (action_id, dispatched_at_us)",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_expires ON {t} (expires_at_ms)"
            " WHERE expires_at_ms IS NOT NULL",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_chain_id ON {t} (chain_id) WHERE chain_id IS NOT NULL",
            f"CREATE UNIQUE INDEX IF NOT EXISTS idx_{t}_hash_chain"
            f" ON {t} (namespace, tenant, sequence_number)"
            " WHERE sequence_number IS NOT NULL",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_signer_id ON {t} (signer_id, kid, dispatched_at_ms DESC)"
            " WHERE signer_id IS NOT NULL",
            f"CREATE INDEX IF NOT EXISTS idx_{t}_coverage"
            f" ON {t} (namespace, tenant, provider, action_type, matched_rule, dispatched_at_ms DESC)",
        )
        self.insert = f"INSERT INTO {t} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        self.by_id = f"SELECT {_SELECT} FROM {t} WHERE id = ?"
        self.by_action = (
            f"SELECT {_SELECT} FROM {t} WHERE action_id = ?"
            f" AND dispatched_at_us = (SELECT MAX(dispatched_at_us) FROM {t} WHERE action_id = ?)"
        )
        self.cleanup = f"DELETE FROM {t} WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?"
