"""``GET /v1/stream`` (SSE): frames, filters, keep-alive and Last-Event-ID replay (§2.15).

httpx's ASGI transport waits for the whole body, which an event stream never
finishes, so these tests drive the ASGI app directly and disconnect on purpose.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from acteon import AsyncGateway
from acteon.server import _stream, create_app
from tests.server.conftest import action, serve

pytestmark = pytest.mark.anyio


class Stream:
    def __init__(self) -> None:
        self.start: dict[str, Any] | None = None
        self.body = b""
        self.changed = anyio.Event()

    def frames(self) -> list[str]:
        return [f for f in self.body.decode().split("\n\n") if f]

    async def wait_for(self, count: int) -> list[str]:
        with anyio.fail_after(5):
            while len(self.frames()) < count:
                self.changed = anyio.Event()
                await self.changed.wait()
        return self.frames()


@asynccontextmanager
async def open_stream(gw: AsyncGateway, query: str = "", headers: dict[str, str] | None = None
                      ) -> AsyncIterator[Stream]:
    app = create_app(gw)
    stream = Stream()
    disconnect = anyio.Event()
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stream.start = message
        elif message["type"] == "http.response.body":
            stream.body += message.get("body", b"")
        stream.changed.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/v1/stream", "raw_path": b"/v1/stream", "query_string": query.encode(), "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 1), "server": ("acteon.test", 80),
    }
    call: Callable[[], Awaitable[None]] = lambda: app(scope, receive, send)  # noqa: E731
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.fail_after(5):
            while stream.start is None:
                await anyio.sleep(0)
        yield stream
        disconnect.set()


def parse(frame: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in frame.split("\n"))  # type: ignore[misc]


async def test_stream_sends_dispatch_events_as_frames() -> None:
    async with serve() as (gw, _), open_stream(gw) as stream:
        assert stream.start is not None and stream.start["status"] == 200
        headers = dict(stream.start["headers"])
        assert headers[b"content-type"].startswith(b"text/event-stream")
        assert headers[b"cache-control"] == b"no-cache"
        await gw.dispatch(action(id="one"))
        (frame,) = await stream.wait_for(1)
        fields = parse(frame)
        assert list(fields) == ["id", "event", "data"]
        assert fields["event"] == "action_dispatched"
        data = json.loads(fields["data"])
        assert data["id"] == fields["id"] and data["action_id"] == "one"
        assert data["outcome"] == {"Executed": {"status": "success", "body": None, "headers": {}}}
        record = await gw.audit_get("one")
        assert record is not None and record.id == fields["id"]  # the event id is the audit record id
    assert gw._events.has_subscribers is False  # the disconnect closed the subscription


async def test_stream_filters() -> None:
    async with serve() as (gw, _), open_stream(gw, "outcome=suppressed&namespace=notifications") as stream:
        await gw.dispatch(action(id="plain"))
        await gw.dispatch(action(id="other-ns", namespace="x", action_type="spam"))
        await gw.dispatch(action(id="spam", action_type="spam"))
        frames = await stream.wait_for(1)
        await anyio.sleep(0.05)
        assert [json.loads(parse(f)["data"])["action_id"] for f in stream.frames()] == ["spam"]
        assert len(frames) == 1


async def test_keepalive_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "KEEPALIVE_SECONDS", 0.01)
    async with serve() as (gw, _), open_stream(gw) as stream:
        frames = await stream.wait_for(1)
        assert frames[0] == ":ping"


async def test_last_event_id_replays_newer_audited_dispatches_once() -> None:
    async with serve() as (gw, _):
        await gw.dispatch(action(id="seen"))
        seen = await gw.audit_get("seen")
        assert seen is not None
        gw.clock.advance(1)  # type: ignore[attr-defined]
        await gw.dispatch(action(id="missed-1"))
        gw.clock.advance(1)  # type: ignore[attr-defined]
        await gw.dispatch(action(id="missed-2", action_type="spam"))
        async with open_stream(gw, headers={"Last-Event-ID": seen.id}) as stream:
            replayed = await stream.wait_for(2)
            assert [json.loads(parse(f)["data"])["action_id"] for f in replayed] == ["missed-1", "missed-2"]
            assert json.loads(parse(replayed[1])["data"])["outcome"] == {"Suppressed": {"rule": "block-spam"}}
            gw.clock.advance(1)  # type: ignore[attr-defined]
            await gw.dispatch(action(id="live"))
            frames = await stream.wait_for(3)
            assert json.loads(parse(frames[2])["data"])["action_id"] == "live"
        async with open_stream(gw, headers={"Last-Event-ID": "not-a-uuid"}) as stream:
            await gw.dispatch(action(id="after"))
            (only,) = await stream.wait_for(1)
            assert json.loads(parse(only)["data"])["action_id"] == "after"


def test_lagged_frame_has_no_id() -> None:
    from datetime import UTC, datetime

    from acteon._events import LAGGED, StreamEvent

    lagged = StreamEvent(LAGGED, datetime(2026, 1, 15, tzinfo=UTC), data={"skipped": 3})
    assert _stream.frame(lagged) == b'event:lagged\ndata:{"skipped":3}\n\n'
