"""In-process audit store."""

from __future__ import annotations

import threading

from acteon._clock import Clock
from acteon._exceptions import AuditStorageError
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord, Cursor, check_cursor_kind, latest_of_action

_BIG = 2**63


def _seq_asc_key(r: AuditRecord) -> tuple[int, str]:
    return (r.sequence_number if r.sequence_number is not None else _BIG, r.id)


def _ts_desc_key(r: AuditRecord) -> tuple[int, str]:
    return (r.dispatched_at_ms, r.id)


class MemoryAuditStore(AuditStore):
    """Keeps records in a dict; every filter, sort and cursor of the spec."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        if clock is not None:
            self._clock = clock
            self._clock_explicit = True
        self._records: dict[str, AuditRecord] = {}
        self._by_action: dict[str, list[str]] = {}
        self._seqs: set[tuple[str, str, int]] = set()
        self._mutex = threading.Lock()

    async def record(self, entry: AuditRecord) -> None:
        with self._mutex:
            if entry.id in self._records:
                raise AuditStorageError(f"unique constraint violation: duplicate id {entry.id}")
            if entry.sequence_number is not None:
                seq_key = (entry.namespace, entry.tenant, entry.sequence_number)
                if seq_key in self._seqs:
                    raise AuditStorageError(
                        "unique constraint violation: duplicate sequence_number "
                        f"{entry.sequence_number} for {entry.namespace}/{entry.tenant}"
                    )
                self._seqs.add(seq_key)
            self._records[entry.id] = entry
            self._by_action.setdefault(entry.action_id, []).append(entry.id)

    def __len__(self) -> int:
        return len(self._records)

    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        return self._records.get(record_id)

    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        with self._mutex:
            candidates = [self._records[i] for i in self._by_action.get(action_id, ())]
        return latest_of_action(candidates)

    async def query(self, query: AuditQuery) -> AuditPage:
        limit = query.effective_limit
        cursor = Cursor.decode(query.cursor) if query.cursor else None
        if cursor is not None:
            check_cursor_kind(cursor, query)
        with self._mutex:
            rows = [r for r in self._records.values() if query.matches(r)]
        if query.sort_by_sequence_asc:
            rows.sort(key=_seq_asc_key)
            if cursor is not None:
                after = (cursor.seq if cursor.seq is not None else _BIG, cursor.id)
                rows = [r for r in rows if _seq_asc_key(r) > after]
        elif query.sort_by_sequence_desc:
            rows.sort(key=lambda r: (r.sequence_number if r.sequence_number is not None else -1, r.id),
                      reverse=True)
            # NULL sequence numbers sort last.
            rows.sort(key=lambda r: r.sequence_number is None)
        else:
            rows.sort(key=_ts_desc_key, reverse=True)
            if cursor is not None:
                bound = (cursor.ts_ms or 0, cursor.id)
                rows = [r for r in rows if _ts_desc_key(r) < bound]
        total: int | None = None
        offset = 0
        if cursor is None:
            total = len(rows)
            offset = max(0, query.offset or 0)
            rows = rows[offset:]
        page = rows[: limit + 1]
        next_cursor = None
        if len(page) > limit and not query.sort_by_sequence_desc:
            page = page[:limit]
            next_cursor = Cursor.after(page[-1], query.sort_by_sequence_asc).encode()
        elif len(page) > limit:
            page = page[:limit]
        return AuditPage(page, total, limit, offset, next_cursor)

    async def cleanup_expired(self) -> int:
        now = self._clock.now()
        with self._mutex:
            dead = [r for r in self._records.values() if r.expires_at is not None and r.expires_at <= now]
            for r in dead:
                del self._records[r.id]
                ids = self._by_action.get(r.action_id)
                if ids is not None:
                    ids.remove(r.id)
                    if not ids:
                        del self._by_action[r.action_id]
                if r.sequence_number is not None:
                    self._seqs.discard((r.namespace, r.tenant, r.sequence_number))
        return len(dead)
