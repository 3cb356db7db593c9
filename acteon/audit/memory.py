"""In-process audit store."""

from __future__ import annotations

import threading

from acteon._clock import Clock
from acteon._exceptions import AuditStorageError
from acteon.audit._base import AuditStore
from acteon.audit._model import (
    AuditPage,
    AuditQuery,
    AuditRecord,
    Cursor,
    check_cursor_kind,
    cut_page,
    latest_of_action,
    sort_by_sequence,
)


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
        if query.sort_by_sequence_asc or query.sort_by_sequence_desc:
            rows = sort_by_sequence(rows, query, cursor)
        else:
            rows.sort(key=_ts_desc_key, reverse=True)
            if cursor is not None:
                bound = (cursor.ts_ms or 0, cursor.id)
                rows = [r for r in rows if _ts_desc_key(r) < bound]
        # As in SQLite: no cursor whenever sort_by_sequence_desc is set (even if asc wins).
        by_sequence = None if query.sort_by_sequence_desc else query.sort_by_sequence_asc
        return cut_page(rows, query, limit, cursor, by_sequence)

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
