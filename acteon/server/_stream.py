"""``GET /v1/stream``: the gateway's events as server-sent events (server-api.md §2.15).

Frames are written by hand rather than through sse-starlette so the bytes
match upstream's exactly (``id:``/``event:``/``data:`` with no space after the
colon, a ``:ping`` comment every 15 s, ``event:lagged`` without an id).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from acteon._events import EventFilter, StreamEvent, Subscription
from acteon._gateway import AsyncGateway
from acteon._subscriptions import dispatch_event_from_audit
from acteon.audit._model import AuditQuery

KEEPALIVE_SECONDS = 15.0
# Upstream replays at most five minutes and one audit page on reconnect.
REPLAY_WINDOW = timedelta(seconds=300)
REPLAY_LIMIT = 1000
_FILTERS = ("namespace", "tenant", "action_type", "outcome", "event_type", "chain_id", "group_id", "action_id")


def frame(event: StreamEvent) -> bytes:
    """One SSE frame; single-line JSON, so one ``data:`` line always suffices."""
    if event.is_lagged:
        return f"event:lagged\ndata:{json.dumps(event.data, separators=(',', ':'))}\n\n".encode()
    data = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)
    return f"id:{event.id}\nevent:{event.type}\ndata:{data}\n\n".encode()


def uuid7_time(value: str) -> datetime | None:
    """The timestamp embedded in a UUIDv7, or ``None`` when ``value`` is not one."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC)


async def _replay(gateway: AsyncGateway, flt: EventFilter, last_id: str) -> list[StreamEvent]:
    """Audited dispatches after ``last_id`` (at most 5 min back), oldest first (§2.15 reconnect)."""
    since = uuid7_time(last_id)
    if since is None or gateway.audit is None:
        return []
    since = max(since, gateway.clock.now() - REPLAY_WINDOW)
    query = AuditQuery(namespace=flt.namespace, tenant=flt.tenant, action_type=flt.action_type,
                       outcome=flt.outcome, from_=since, limit=REPLAY_LIMIT)
    page = await gateway.audit_query(query)
    events = []
    for record in reversed(page.records):
        if record.id == last_id:
            continue
        event = dispatch_event_from_audit(record)
        if event is not None:
            events.append(event)
    return events


async def _frames(
    gateway: AsyncGateway, flt: EventFilter, sub: Subscription, last_id: str | None
) -> AsyncIterator[bytes]:
    try:
        watermark: str | None = None
        if last_id is not None and uuid7_time(last_id) is not None:
            replayed = await _replay(gateway, flt, last_id)
            for old in replayed:
                yield frame(old)
            watermark = replayed[-1].id if replayed else last_id
        while True:
            event: StreamEvent | None = None
            with anyio.move_on_after(KEEPALIVE_SECONDS):
                event = await sub.__anext__()
            if event is None:
                yield b":ping\n\n"
                continue
            # Ids are time-ordered: anything at or before the replay's end was already sent.
            if watermark is not None and not event.is_lagged and event.id <= watermark:
                continue
            yield frame(event)
    finally:
        sub.close()


async def stream(request: Request, gateway: AsyncGateway) -> Any:
    params: dict[str, Any] = {name: request.query_params.get(name) for name in _FILTERS}
    # Subscribe before replaying so nothing published meanwhile is lost (duplicates are dropped).
    flt = EventFilter(**params)
    sub = gateway.events(flt)
    return StreamingResponse(
        _frames(gateway, flt, sub, request.headers.get("last-event-id")),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
