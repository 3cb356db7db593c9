"""Tamper-evident hash chain over audit records (state-audit.md B8, DECISIONS D21).

Every record of one ``(namespace, tenant)`` gets a ``sequence_number`` (0, 1,
2, ...), the previous record's hash and its own ``record_hash``. acteon's hash
covers the whole record as stored -- payload (encrypted form when encryption is
on), details, metadata, sequence number and previous hash -- so changing any
stored field breaks the chain. The upstream hash, which covers ten identity
fields only, stays available as :func:`legacy_record_hash` for records written
by upstream Acteon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import anyio

from acteon._exceptions import AuditStorageError
from acteon._timefmt import format_rfc3339
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditQuery, AuditRecord
from acteon.audit._wrapper import AuditStoreWrapper

MAX_CHAIN_RETRIES = 5
VERIFY_PAGE_SIZE = 500


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _legacy_time(value: datetime) -> str:
    """RFC 3339 with ``+00:00`` and the shortest exact fraction, as upstream's chrono prints it."""
    value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    text = format_rfc3339(value)
    return text[:-1] + "+00:00"


def legacy_record_hash(record: AuditRecord) -> str:
    """The upstream hash: SHA-256 of ten identity fields (no payload, no sequence number)."""
    return hashlib.sha256(_canonical({
        "action_id": record.action_id,
        "action_type": record.action_type,
        "dispatched_at": _legacy_time(record.dispatched_at),
        "id": record.id,
        "namespace": record.namespace,
        "outcome": record.outcome,
        "previous_hash": record.previous_hash,
        "provider": record.provider,
        "tenant": record.tenant,
        "verdict": record.verdict,
    })).hexdigest()


def record_hash(record: AuditRecord) -> str:
    """acteon's hash (D21): SHA-256 of the stored record's JSON, minus ``record_hash``."""
    data = record.to_dict()
    data.pop("record_hash", None)
    data["attachment_metadata"] = list(record.attachment_metadata or [])
    return hashlib.sha256(_canonical(data)).hexdigest()


@dataclass(frozen=True, slots=True)
class HashChainVerification:
    """Result of :meth:`HashChainAuditStore.verify_chain`."""

    valid: bool
    records_checked: int
    first_broken_at: str | None = None
    first_record_id: str | None = None
    last_record_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class ChainedAppend(Protocol):
    """A store that can read the chain tip and insert in one transaction (SQLite)."""

    async def record_chained(
        self, entry: AuditRecord, seal: Callable[[AuditRecord, str | None, int], AuditRecord]
    ) -> AuditRecord: ...


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unique" in text or "duplicate" in text


class HashChainAuditStore(AuditStoreWrapper):
    """Assigns ``sequence_number``, ``previous_hash`` and ``record_hash`` on ``record``.

    Sits directly on the storage (below encryption) so the hash covers exactly
    what is stored. Concurrent writers are kept apart by the store's unique
    ``(namespace, tenant, sequence_number)`` index: a conflicting append is retried
    up to :data:`MAX_CHAIN_RETRIES` times with a growing, jittered pause. Stores
    offering ``record_chained`` (SQLite) append in one transaction instead.

    Args:
        inner: the storage.
        legacy_hash: verify with the upstream hash (records written by upstream
            Acteon); new records are then also hashed the upstream way.
    """

    def __init__(self, inner: AuditStore, *, legacy_hash: bool = False, rng: random.Random | None = None) -> None:
        super().__init__(inner)
        self.legacy_hash = legacy_hash
        self._hash: Callable[[AuditRecord], str] = legacy_record_hash if legacy_hash else record_hash
        self._rng = rng or random.Random()
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep
        # One in-process writer per chain at a time: spares the retry loop on a
        # single process; the unique index still guards against other processes.
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    def seal(self, entry: AuditRecord, previous_hash: str | None, sequence_number: int) -> AuditRecord:
        """``entry`` linked after the given tip, with its hash computed."""
        linked = dataclasses.replace(
            entry, previous_hash=previous_hash, sequence_number=sequence_number, record_hash=None
        )
        linked.record_hash = self._hash(linked)
        return linked

    async def _tip(self, namespace: str, tenant: str) -> tuple[str | None, int]:
        page = await self.inner.query(
            AuditQuery(namespace=namespace, tenant=tenant, limit=1, sort_by_sequence_desc=True)
        )
        if page.records and page.records[0].record_hash is not None:
            top = page.records[0]
            return top.record_hash, (top.sequence_number or 0) + 1
        return None, 0

    async def record(self, entry: AuditRecord) -> None:
        key = (entry.namespace, entry.tenant)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if isinstance(self.inner, ChainedAppend):
                await self.inner.record_chained(entry, self.seal)
                return
            await self._append_with_retries(entry)

    async def _append_with_retries(self, entry: AuditRecord) -> None:
        last: BaseException | None = None
        for attempt in range(MAX_CHAIN_RETRIES):
            previous, seq = await self._tip(entry.namespace, entry.tenant)  # errors propagate
            try:
                await self.inner.record(self.seal(entry, previous, seq))
                return
            except Exception as exc:
                if not _is_conflict(exc):
                    raise
                last = exc
            base = 10 * 2 ** min(attempt, 6)
            await self._sleep((base + self._rng.uniform(0, base)) / 1000)
        raise AuditStorageError(
            f"hash chain write failed after {MAX_CHAIN_RETRIES} retries for "
            f"({entry.namespace}, {entry.tenant}): {last}"
        ) from last

    async def verify_chain(
        self,
        namespace: str,
        tenant: str,
        from_: datetime | None = None,
        to: datetime | None = None,
    ) -> HashChainVerification:
        """Walk the chain in sequence order and report the first broken link.

        With ``from_`` the walk starts at the first record in range and trusts
        that record's ``previous_hash`` (its predecessor is out of range);
        sequence numbers must still follow each other without gaps.
        """
        checked = 0
        first_id: str | None = None
        last_id: str | None = None
        expected_prev: str | None = None
        expected_seq: int | None = None
        cursor: str | None = None
        while True:
            page = await self.inner.query(AuditQuery(
                namespace=namespace, tenant=tenant, from_=from_, to=to, limit=VERIFY_PAGE_SIZE,
                sort_by_sequence_asc=True, cursor=cursor,
            ))
            for rec in page.records:
                if rec.sequence_number is None:
                    continue  # unchained rows (written before the chain was on) sort last
                if first_id is None:
                    first_id = rec.id
                    if from_ is not None:
                        expected_prev = rec.previous_hash
                        expected_seq = rec.sequence_number
                    else:
                        expected_seq = 0
                checked += 1
                last_id = rec.id
                broken = (
                    rec.previous_hash != expected_prev
                    or rec.sequence_number != expected_seq
                    or rec.record_hash is None
                    or self._hash(rec) != rec.record_hash
                )
                if broken:
                    return HashChainVerification(False, checked, rec.id, first_id, last_id)
                expected_prev = rec.record_hash
                expected_seq = rec.sequence_number + 1
            if not page.records or len(page.records) < VERIFY_PAGE_SIZE or page.next_cursor is None:
                break
            cursor = page.next_cursor
        return HashChainVerification(True, checked, None, first_id, last_id)
