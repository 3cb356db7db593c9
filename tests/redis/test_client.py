"""The auto-pipelining client: coalescing, per-command errors, scripts, connections."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from typing import Any

import pytest

from acteon import StateBackendError, StateConnectionError
from acteon.state import StateKey
from acteon.state._redis_client import MAX_BATCH, Script, parse_redis_url
from acteon.state.redis import RedisStateStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def _evalsha_calls(raw: Any) -> int:
    stats = raw.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))


async def test_concurrent_calls_share_writes(store: RedisStateStore) -> None:
    stats = store.client.stats
    await store.get(StateKey("ns", "t", "state", "warm"))
    batches, commands = stats.batches, stats.commands
    keys = [StateKey("ns", "t", "dedup", str(i)) for i in range(64)]
    results = await asyncio.gather(*(store.check_and_set(k, "1") for k in keys))
    assert all(results)
    assert stats.commands - commands == 64
    # One write per MAX_BATCH commands issued in the same loop turn.
    assert stats.batches - batches == 64 // MAX_BATCH


async def test_idle_connection_writes_a_lone_command_at_once(store: RedisStateStore) -> None:
    await store.get(StateKey("ns", "t", "state", "warm"))
    conn = store.client._conn
    assert conn is not None
    fut = conn.submit(b"*1\r\n$4\r\nPING\r\n")
    assert conn.out == []  # already written: no loop turn spent before the write
    assert await fut == "PONG"


async def test_deferred_commands_wait_for_company(redis_url: str, prefix: str) -> None:
    """A deferred command leaves with the next awaited one, or alone after the delay."""
    async with RedisStateStore(redis_url, prefix=prefix, deferred_flush_delay=0.05) as store:
        stats = store.client.stats
        lock = store.distributed_lock()
        guard = await lock.try_acquire("company", 10)
        assert guard is not None
        before = (stats.batches, stats.deferred_batches)
        await guard.release_deferred()
        assert await store.get(StateKey("ns", "t", "state", "x")) is None
        assert (stats.batches, stats.deferred_batches) == (before[0] + 1, before[1])  # one write, awaited
        assert await lock.try_acquire("company", 10) is not None  # the release went with it

        guard = await lock.try_acquire("alone", 10)
        assert guard is not None
        before = (stats.batches, stats.deferred_batches)
        await guard.release_deferred()
        await asyncio.sleep(0.2)
        assert (stats.batches, stats.deferred_batches) == (before[0] + 1, before[1] + 1)
        assert stats.round_trips == stats.batches - stats.deferred_batches
        assert await lock.try_acquire("alone", 10) is not None


async def test_server_sees_every_command(store: RedisStateStore, raw: Any) -> None:
    await store.get(StateKey("ns", "t", "state", "warm"))
    before = _evalsha_calls(raw)
    await asyncio.gather(*(store.set(StateKey("ns", "t", "state", str(i)), "v") for i in range(50)))
    # Other clients may run scripts on the same server meanwhile: at least ours.
    assert _evalsha_calls(raw) - before >= 50


async def test_sequential_calls_are_one_write_each(store: RedisStateStore) -> None:
    stats = store.client.stats
    await store.get(StateKey("ns", "t", "state", "warm"))
    batches = stats.batches
    for i in range(10):
        await store.get(StateKey("ns", "t", "state", str(i)))
    assert stats.batches - batches == 10


async def test_auto_pipeline_off_writes_each_command(redis_url: str, prefix: str) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, auto_pipeline=False) as store:
        stats = store.client.stats
        batches = stats.batches
        await asyncio.gather(*(store.get(StateKey("ns", "t", "state", str(i))) for i in range(20)))
        assert stats.batches - batches == 20


async def test_errors_are_per_command(store: RedisStateStore, raw: Any, prefix: str) -> None:
    raw.rpush(f"{prefix}:ns:t:state:bad:h", "x")
    good = StateKey("ns", "t", "state", "good")
    await store.set(good, "ok")
    results = await asyncio.gather(
        store.get(good),
        store.get(StateKey("ns", "t", "state", "bad")),
        store.get(good),
        return_exceptions=True,
    )
    assert results[0] == "ok" and results[2] == "ok"
    assert isinstance(results[1], StateBackendError)


async def test_noscript_falls_back_to_eval(store: RedisStateStore) -> None:
    client = store.client
    script = Script("fresh", f"-- {uuid.uuid4()}\nreturn ARGV[1] .. '!'", 0)
    assert await client.run(script, "hi") == "hi!"
    assert await client.run(script, "again") == "again!"  # now cached: EVALSHA


async def test_cancelled_call_keeps_stream_in_sync(store: RedisStateStore) -> None:
    key = StateKey("ns", "t", "state", "sync")
    await store.set(key, "v")
    task = asyncio.ensure_future(store.get(key))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.get(key) == "v"
    assert await store.get(StateKey("ns", "t", "state", "none")) is None


async def test_unreachable_server_names_the_url() -> None:
    store = RedisStateStore("redis://127.0.0.1:6390", connect_timeout=1)
    with pytest.raises(StateConnectionError, match=r"redis://127\.0\.0\.1:6390") as info:
        await store.get(StateKey("ns", "t", "state", "x"))
    assert str(info.value).startswith("connection error: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    await store.aclose()
    await store.aclose()


async def test_password_is_masked() -> None:
    addr = parse_redis_url("redis://user:s3cret@127.0.0.1:6390/3")
    assert addr.display == "redis://user:***@127.0.0.1:6390/3"
    assert (addr.username, addr.password, addr.db, addr.port) == ("user", "s3cret", 3, 6390)
    store = RedisStateStore("redis://user:s3cret@127.0.0.1:6390/3", connect_timeout=1)
    with pytest.raises(StateConnectionError) as info:
        await store.start()
    assert "s3cret" not in str(info.value)


async def test_url_forms() -> None:
    assert parse_redis_url("redis://h").db == 0
    assert parse_redis_url("redis://h:1/?db=4").db == 4
    unix = parse_redis_url("unix:///tmp/r.sock?db=2&password=p")
    assert (unix.path, unix.db, unix.password) == ("/tmp/r.sock", 2, "p")
    assert parse_redis_url("rediss://h?ssl_cert_reqs=none").tls_insecure


async def test_auth_failure_is_a_connection_error(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://nobody:wrong@")
    store = RedisStateStore(url, connect_timeout=1)
    with pytest.raises(StateConnectionError, match="AUTH"):
        await store.start()


async def test_reconnects_after_the_connection_is_killed(store: RedisStateStore, raw: Any) -> None:
    key = StateKey("ns", "t", "state", "k")
    await store.set(key, "1")
    client_id = await store.client.call("CLIENT", "ID")
    raw.client_kill_filter(_id=client_id)
    await asyncio.sleep(0.05)
    assert await store.get(key) == "1"


async def test_pending_calls_fail_when_connection_drops(store: RedisStateStore, raw: Any) -> None:
    await store.get(StateKey("ns", "t", "state", "warm"))
    client_id = await store.client.call("CLIENT", "ID")
    # DEBUG SLEEP would stall the whole shared server; a blocking pop on our own connection
    # keeps only this connection busy while another client kills it.
    pending = asyncio.ensure_future(store.client.call("BLPOP", f"{store.prefix}:never", 5))
    await asyncio.sleep(0.05)
    raw.client_kill_filter(_id=client_id)
    with pytest.raises(StateConnectionError, match="lost connection"):
        await pending


async def test_socket_timeout_drops_a_silent_server() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStateStore(f"redis://127.0.0.1:{port}", socket_timeout=0.2, connect_timeout=0.5)
    try:
        with pytest.raises(StateConnectionError):
            await store.start()  # the SCRIPT LOAD handshake never answers
    finally:
        await store.aclose()
        server.close()


async def test_watchdog_fires_on_a_stalled_reply(redis_url: str, prefix: str) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, socket_timeout=0.2) as store:
        with pytest.raises(StateConnectionError, match="no reply"):
            await store.client.call("BLPOP", f"{prefix}:never", 2)
        assert await store.get(StateKey("ns", "t", "state", "after")) is None  # reconnected


def test_usable_from_successive_event_loops(redis_url: str, prefix: str) -> None:
    store = RedisStateStore(redis_url, prefix=prefix)
    key = StateKey("ns", "t", "state", "loops")
    asyncio.run(store.set(key, "a"))
    assert asyncio.run(store.get(key)) == "a"
    asyncio.run(store.aclose())


async def test_open_state_store_url(redis_url: str, prefix: str) -> None:
    from acteon.state import open_state_store

    store = open_state_store(redis_url, prefix=prefix)
    assert isinstance(store, RedisStateStore)
    async with store:
        await store.set(StateKey("ns", "t", "state", "x"), "y")
        assert await store.get(StateKey("ns", "t", "state", "x")) == "y"


async def test_pool_size_spreads_calls(redis_url: str, prefix: str) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, pool_size=3) as store:
        key = StateKey("ns", "t", "counter", "pool")
        await asyncio.gather(*(store.increment(key, 1) for _ in range(30)))
        assert await store.get(key) == "30"
        guard, _ = await store.claim_and_check_and_set("p", 10, StateKey("ns", "t", "dedup", "p"), "1")
        assert guard is not None and await guard.release()


# --------------------------------------------------------------------------- across processes


def _process_worker(url: str, prefix: str, n: int, out: Any) -> None:
    async def main() -> tuple[int, int]:
        async with RedisStateStore(url, prefix=prefix) as store:
            wins = 0
            for i in range(n):
                if await store.check_and_set(StateKey("ns", "t", "dedup", f"race-{i}"), "1"):
                    wins += 1
            for _ in range(n):
                await store.increment(StateKey("ns", "t", "counter", "procs"), 1)
            return wins, 0

    wins, _ = asyncio.run(main())
    out.put(wins)


def test_check_and_set_and_increment_across_processes(redis_url: str, prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(redis_url, prefix, 50, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    wins = [out.get(timeout=5) for _ in procs]
    assert sum(wins) == 50  # each race key won exactly once

    async def total() -> str | None:
        async with RedisStateStore(redis_url, prefix=prefix) as store:
            return await store.get(StateKey("ns", "t", "counter", "procs"))

    assert asyncio.run(total()) == "200"


async def test_acl_user_without_client_and_script_load(redis_url: str, prefix: str, raw: Any) -> None:
    user = f"acteon-test-{uuid.uuid4().hex[:8]}"
    raw.acl_setuser(
        user,
        enabled=True,
        passwords=["+pw"],
        keys=[f"{prefix}*"],
        commands=["+@all", "-client", "-script|load"],
    )
    try:
        url = redis_url.replace("redis://", f"redis://{user}:pw@")
        async with RedisStateStore(url, prefix=prefix) as store:
            key = StateKey("ns", "t", "state", "acl")
            await store.set(key, "v")
            assert await store.get(key) == "v"
            assert await store.scan_keys("ns", "t", "state") == [("ns:t:state:acl", "v")]
    finally:
        raw.acl_deluser(user)
