"""Redis audit store: records in a hash, lexicographic sorted sets as indexes.

Layout (``A`` = ``{prefix}:audit:``):

=================================  =====  ==================================================
key                                type   content
=================================  =====  ==================================================
``A records``                      hash   record id -> record JSON (the upstream wire form)
``A ix:all``                       zset   every record, member ``"{ms:013d}:{id}"``, score 0
``A ix:nt:["{ns}","{tenant}"]``    zset   same members, per (namespace, tenant)
``A ix:{field}:{value}``           zset   same members, per value of ``namespace``,
                                          ``provider``, ``outcome``, ``action_id``,
                                          ``chain_id``, ``signer_id``
``A seq``                          hash   ``["{ns}","{tenant}",n]`` -> id: one record per
                                          (namespace, tenant, sequence_number)
``A expires``                      zset   id, score ``expires_at`` in epoch ms
=================================  =====  ==================================================

All index members have score 0, so a sorted set orders them by the member
bytes: ``dispatched_at`` truncated to the millisecond (13 digits) and then the
id. That is exactly the default sort key ``(ms DESC, id DESC)`` and the keyset
cursor ``{"k":"ts","t":ms,"i":id}`` maps to an exclusive lexicographic bound,
so pages never skip or repeat a record (DECISIONS D20).

Queries pick the smallest applicable index (``ZCARD``, inside the script) and
read it newest first. When that index covers every filter of the query (no
other equality filter, no tenant scope, no time range) a page is one round
trip and ``total`` comes from ``ZLEXCOUNT``. Otherwise records are read in
chunks and filtered in Python with the shared :meth:`AuditQuery.matches`:
cost O(records in the chosen index up to the page) on cursor pages and
O(records in the chosen index) when ``total`` is needed (offset pages) or the
order is by sequence number (those sort in Python, as the memory store does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from acteon._clock import Clock
from acteon._exceptions import AuditSerializationError, AuditStorageError
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
from acteon.state._redis_client import RedisClient, Script, require_hiredis

__all__ = ["RedisAuditStore"]

log = logging.getLogger("acteon.audit.redis")

_RECORD = Script.load("audit_record", None)
_DELETE = Script.load("audit_delete", None)
_PAGE = Script.load("audit_page", None)
SCRIPTS = (_RECORD, _DELETE, _PAGE)

#: Fields with their own index (besides (namespace, tenant) and "all").
INDEXED_FIELDS = ("namespace", "provider", "outcome", "action_id", "chain_id", "signer_id")

_MAX_CHUNK = 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _epoch_ms(value: datetime) -> int:
    """Exact epoch milliseconds (floor), without float rounding."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def _member(record: AuditRecord) -> str:
    return f"{max(record.dispatched_at_ms, 0):013d}:{record.id}"


def _seq_field(record: AuditRecord) -> str:
    if record.sequence_number is None:
        return ""
    return json.dumps([record.namespace, record.tenant, record.sequence_number], ensure_ascii=False)


def _reply_error(message: str) -> Exception:
    if message.startswith("UNIQUE "):
        return AuditStorageError(f"unique constraint violation: {message[7:]}")
    return AuditStorageError(message)


def _decode(doc: str) -> AuditRecord:
    try:
        data = json.loads(doc)
    except ValueError as exc:
        raise AuditSerializationError(f"invalid stored audit record: {exc}") from exc
    return AuditRecord.from_dict(data)


class RedisAuditStore(AuditStore):
    """:class:`AuditStore` on a Redis server (standalone; not Cluster).

    ``record`` waits for Redis by default, so a duplicate id or
    (namespace, tenant, sequence_number) raises
    ``AuditStorageError("unique constraint violation: ...")`` on that call;
    concurrent ``record`` calls are still sent as one pipeline. With
    ``write_behind=True`` a record without a sequence number is queued and
    sent with the next batch of commands (or within ``deferred_flush_delay``
    seconds); reads issued afterwards see it (one ordered connection), and a
    rejected write is raised by the next :meth:`flush`. Records with a
    sequence number (hash chain) are always written synchronously.
    ``clock`` decides what :meth:`cleanup_expired` considers expired.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        *,
        prefix: str = "acteon",
        clock: Clock | None = None,
        write_behind: bool = False,
        socket_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        deferred_flush_delay: float | None = 0.002,
        tls_insecure: bool = False,
    ) -> None:
        require_hiredis("RedisAuditStore")
        if clock is not None:
            self._clock = clock
            self._clock_explicit = True
        self.prefix = prefix
        a = f"{prefix}:audit:" if prefix else "audit:"
        self._a = a
        self._records = a + "records"
        self._seq = a + "seq"
        self._expires = a + "expires"
        self._all = a + "ix:all"
        self.write_behind = write_behind
        self._client = RedisClient(
            url,
            scripts=SCRIPTS,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            deferred_delay=deferred_flush_delay,
            tls_insecure=tls_insecure,
            client_name="acteon-audit",
            connection_error=lambda m: AuditStorageError(f"connection error: {m}"),
            backend_error=AuditStorageError,
            reply_error=_reply_error,
        )
        self._write_errors: list[str] = []

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def client(self) -> RedisClient:
        return self._client

    def __repr__(self) -> str:
        return f"RedisAuditStore({self.url!r}, prefix={self.prefix!r})"

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._client.connect()

    async def flush(self) -> None:
        """Send queued write-behind records; raise if Redis rejected any."""
        await self._client.drain()
        if self._write_errors:
            errors, self._write_errors = self._write_errors, []
            raise AuditStorageError(
                f"{len(errors)} buffered audit record(s) rejected: " + "; ".join(errors[:5])
            )

    async def aclose(self) -> None:
        try:
            await self.flush()
        except AuditStorageError as exc:
            log.error("%s", exc)
        finally:
            await self._client.aclose()

    # ---------------------------------------------------------------- keys

    def _index_keys(self, record: AuditRecord) -> list[str]:
        a = self._a
        keys = [self._all, a + "ix:nt:" + json.dumps([record.namespace, record.tenant], ensure_ascii=False)]
        for name in INDEXED_FIELDS:
            value = getattr(record, name)
            if value is not None:
                keys.append(f"{a}ix:{name}:{value}")
        return keys

    def _candidates(self, q: AuditQuery) -> list[tuple[str, frozenset[str]]]:
        a = self._a
        out: list[tuple[str, frozenset[str]]] = []
        if q.namespace is not None and q.tenant is not None:
            key = a + "ix:nt:" + json.dumps([q.namespace, q.tenant], ensure_ascii=False)
            out.append((key, frozenset(("namespace", "tenant"))))
        for name in INDEXED_FIELDS:
            value = getattr(q, name)
            if value is None or (name == "namespace" and q.tenant is not None):
                continue
            out.append((f"{a}ix:{name}:{value}", frozenset((name,))))
        if not out:
            out.append((self._all, frozenset()))
        return out

    # ---------------------------------------------------------------- writes

    def _record_args(self, entry: AuditRecord) -> tuple[Any, ...]:
        try:
            doc = json.dumps(entry.to_dict(), separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise AuditSerializationError(f"audit record {entry.id} is not JSON-serializable: {exc}") from exc
        index_keys = self._index_keys(entry)
        expires = "" if entry.expires_at is None else _epoch_ms(entry.expires_at)
        return (
            3 + len(index_keys),
            self._records,
            self._seq,
            self._expires,
            *index_keys,
            entry.id,
            doc,
            _member(entry),
            _seq_field(entry),
            expires,
        )

    async def record(self, entry: AuditRecord) -> None:
        args = self._record_args(entry)
        if self.write_behind and entry.sequence_number is None:
            await self._client.run_deferred(_RECORD, *args, on_error=self._write_errors.append)
            return
        await self._client.run(_RECORD, *args)

    # ---------------------------------------------------------------- reads

    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        doc = await self._client.call("HGET", self._records, record_id)
        return None if doc is None else _decode(doc)

    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        key = f"{self._a}ix:action_id:{action_id}"
        candidates, _ = await self._walk([key], "+", "-", None, 0, None, False)
        return latest_of_action(candidates)

    async def _page(
        self, keys: list[str], max_b: str, min_b: str, offset: int, count: int, with_count: bool
    ) -> tuple[int, int, list[tuple[str, str | None]]]:
        reply = await self._client.run(
            _PAGE,
            1 + len(keys),
            self._records,
            *keys,
            max_b,
            min_b,
            offset,
            count,
            "1" if with_count else "0",
        )
        pairs = [(reply[i], reply[i + 1]) for i in range(2, len(reply), 2)]
        return int(reply[0]), int(reply[1]), pairs

    async def _walk(
        self,
        keys: list[str],
        max_b: str,
        min_b: str,
        predicate: Callable[[AuditRecord], bool] | None,
        skip: int,
        take: int | None,
        count_all: bool,
    ) -> tuple[list[AuditRecord], int]:
        """Matching records newest first: ``matches[skip:skip+take]`` and the number seen.

        Stops once the window is full unless ``count_all``.
        """
        window: list[AuditRecord] = []
        seen = 0
        chunk = _MAX_CHUNK if take is None or count_all else min(max(2 * (skip + take), 64), _MAX_CHUNK)
        while True:
            chosen, _, pairs = await self._page(keys, max_b, min_b, 0, chunk, False)
            keys = [keys[chosen - 1]]
            for _member_text, doc in pairs:
                if doc is None:
                    continue
                record = _decode(doc)
                if predicate is not None and not predicate(record):
                    continue
                if seen >= skip and (take is None or len(window) < take):
                    window.append(record)
                seen += 1
                if not count_all and take is not None and len(window) >= take:
                    return window, seen
            if len(pairs) < chunk:
                return window, seen
            max_b = "(" + pairs[-1][0]
            chunk = min(chunk * 2, _MAX_CHUNK)

    async def query(self, query: AuditQuery) -> AuditPage:
        limit = query.effective_limit
        cursor = Cursor.decode(query.cursor) if query.cursor else None
        if cursor is not None:
            check_cursor_kind(cursor, query)
        candidates = self._candidates(query)
        keys = [key for key, _ in candidates]
        if query.sort_by_sequence_asc or query.sort_by_sequence_desc:
            return await self._query_by_sequence(query, keys, limit, cursor)

        # Time bounds only narrow the index range; the exact comparison is done by
        # AuditQuery.matches. One spare millisecond on each side absorbs float
        # rounding in AuditRecord.dispatched_at_ms.
        max_b, min_b = "+", "-"
        if query.to is not None:
            max_b = f"({max(_epoch_ms(query.to) + 2, 0):013d}:"
        if cursor is not None:
            bound = f"{max(cursor.ts_ms or 0, 0):013d}:{cursor.id}"
            if max_b == "+" or bound < max_b[1:]:
                max_b = "(" + bound
        if query.from_ is not None:
            min_b = f"[{max(_epoch_ms(query.from_) - 1, 0):013d}:"

        active = {name for name in AuditQuery.EQUALITY_FIELDS if getattr(query, name) is not None}
        exact = (
            len(candidates) == 1
            and candidates[0][1] == active
            and not query.tenant_scope
            and query.from_ is None
            and query.to is None
        )
        offset = 0 if cursor is not None else max(0, query.offset or 0)
        total: int | None
        if exact:
            _, counted, pairs = await self._page(keys, max_b, min_b, offset, limit + 1, cursor is None)
            rows = [_decode(doc) for _, doc in pairs if doc is not None]
            total = counted if cursor is None else None
        else:
            rows, seen = await self._walk(
                keys, max_b, min_b, query.matches, offset, limit + 1, cursor is None
            )
            total = seen if cursor is None else None
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = Cursor.after(rows[-1], False).encode()
        return AuditPage(rows, total, limit, offset, next_cursor)

    async def _query_by_sequence(
        self, query: AuditQuery, keys: list[str], limit: int, cursor: Cursor | None
    ) -> AuditPage:
        rows, _ = await self._walk(keys, "+", "-", query.matches, 0, None, True)
        rows = sort_by_sequence(rows, query, cursor)
        # Unlike memory and SQLite, an ascending order pages by cursor even when
        # sort_by_sequence_desc is set too (kept as it was).
        return cut_page(rows, query, limit, cursor, True if query.sort_by_sequence_asc else None)

    # ---------------------------------------------------------------- cleanup

    async def cleanup_expired(self) -> int:
        """Delete records whose ``expires_at <= now`` (by this store's clock)."""
        now = self._clock.now()
        now_ms = _epoch_ms(now)
        removed = 0
        skipped = 0
        while True:
            ids: list[str] = await self._client.call(
                "ZRANGEBYSCORE", self._expires, "-inf", now_ms, "LIMIT", skipped, 500
            )
            if not ids:
                return removed
            docs = await self._client.call("HMGET", self._records, *ids)
            batch: list[tuple[Script, tuple[Any, ...]]] = []
            for record_id, doc in zip(ids, docs, strict=True):
                if doc is None:
                    batch.append((_DELETE, (3, self._records, self._seq, self._expires, record_id, "", "")))
                    continue
                record = _decode(doc)
                if record.expires_at is None or record.expires_at > now:
                    skipped += 1  # same millisecond, a little later: not yet
                    continue
                index_keys = self._index_keys(record)
                batch.append(
                    (
                        _DELETE,
                        (
                            3 + len(index_keys),
                            self._records,
                            self._seq,
                            self._expires,
                            *index_keys,
                            record.id,
                            _member(record),
                            _seq_field(record),
                        ),
                    )
                )
            for reply in await self._client.run_many(batch):
                if isinstance(reply, Exception):
                    raise reply
                removed += int(reply)
