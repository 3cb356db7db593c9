"""RedisAuditStore (state-audit.md B1-B5, Part D items 35-46) plus write-behind batching."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acteon import AuditSerializationError, AuditStorageError
from acteon.audit import AuditQuery, AuditRecord, Cursor, MemoryAuditStore
from acteon.audit.redis import RedisAuditStore
from acteon.state._redis_client import MAX_BATCH
from acteon.testing import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

NOW = datetime(2026, 2, 15, 14, 30, 45, 123456, tzinfo=UTC)


def rec(id: str, action_id: str = "a1", at: datetime = NOW, **kw: Any) -> AuditRecord:
    base: dict[str, Any] = dict(
        id=id,
        action_id=action_id,
        namespace="ns1",
        tenant="t1",
        provider="email",
        action_type="send",
        verdict="allow",
        outcome="executed",
        dispatched_at=at,
        completed_at=at + timedelta(milliseconds=5),
    )
    base.update(kw)
    return AuditRecord(**base)


async def walk(store: Any, query: AuditQuery) -> list[list[str]]:
    pages = []
    cursor = None
    while True:
        query.cursor = cursor
        page = await store.query(query)
        pages.append([r.id for r in page.records])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_round_trip_all_fields(audit: RedisAuditStore) -> None:
    r1 = AuditRecord(
        id="r1",
        action_id="a1",
        chain_id="c1",
        namespace="ns",
        tenant="t",
        provider="p",
        action_type="at",
        verdict="deny",
        matched_rule="rule-1",
        outcome="suppressed",
        action_payload={"x": [1, 2, {"y": None}], "ü": "ß"},
        verdict_details={"reason": "r"},
        outcome_details={"o": 1},
        metadata={"__dedup_key": "d"},
        dispatched_at=NOW,
        completed_at=NOW + timedelta(seconds=1),
        duration_ms=1000,
        expires_at=NOW + timedelta(days=1),
        caller_id="alice",
        auth_method="jwt",
        record_hash="h",
        previous_hash="p",
        sequence_number=7,
        attachment_metadata=[
            {"id": "x", "name": "f", "filename": "f.txt", "content_type": "text/plain", "size_bytes": 3}
        ],
        signature="sig",
        signer_id="ci-bot",
        kid="k1",
        canonical_hash="ch",
    )
    await audit.record(r1)
    assert await audit.get_by_id("r1") == r1
    assert await audit.get_by_action_id("a1") == r1
    assert await audit.get_by_id("nope") is None
    assert await audit.get_by_action_id("nope") is None


async def test_most_recent_by_action(audit: RedisAuditStore) -> None:
    await audit.record(rec("r1", at=NOW - timedelta(seconds=10)))
    await audit.record(rec("r2", at=NOW))
    found = await audit.get_by_action_id("a1")
    assert found is not None and found.id == "r2"
    await audit.record(rec("x-intent", action_id="x", outcome="pending"))
    await audit.record(rec("x", action_id="x"))
    found = await audit.get_by_action_id("x")
    assert found is not None and found.id == "x"


async def test_duplicate_id_is_rejected(audit: RedisAuditStore) -> None:
    await audit.record(rec("dup"))
    with pytest.raises(AuditStorageError, match="unique constraint violation: duplicate id dup"):
        await audit.record(rec("dup", outcome="failed"))
    found = await audit.get_by_id("dup")
    assert found is not None and found.outcome == "executed"
    page = await audit.query(AuditQuery())
    assert page.total == 1


async def test_filters(audit: RedisAuditStore) -> None:
    await audit.record(rec("r1", namespace="ns1", caller_id="alice", matched_rule="block"))
    await audit.record(rec("r2", namespace="ns2", caller_id="bob"))
    page = await audit.query(AuditQuery(namespace="ns1"))
    assert page.total == 1 and [r.id for r in page.records] == ["r1"]
    page = await audit.query(AuditQuery(caller_id="alice"))
    assert [r.id for r in page.records] == ["r1"]
    page = await audit.query(AuditQuery(matched_rule="block"))
    assert [r.id for r in page.records] == ["r1"]
    assert (await audit.query(AuditQuery(matched_rule="other"))).records == []
    page = await audit.query(AuditQuery(provider="email", outcome="executed", namespace="ns2"))
    assert [r.id for r in page.records] == ["r2"]


async def test_signer_kid_matrix(audit: RedisAuditStore) -> None:
    await audit.record(rec("r1", signer_id="ci-bot", kid="k1"))
    await audit.record(rec("r2", signer_id="ci-bot", kid="k2"))
    await audit.record(rec("r3", signer_id="deploy-svc", kid="k1"))
    await audit.record(rec("r4", signer_id="ci-bot"))
    await audit.record(rec("r5"))

    async def ids(**kw: Any) -> set[str]:
        return {r.id for r in (await audit.query(AuditQuery(**kw))).records}

    assert await ids(signer_id="ci-bot") == {"r1", "r2", "r4"}
    assert await ids(signer_id="ci-bot", kid="k1") == {"r1"}
    assert await ids(kid="k1") == {"r1", "r3"}
    assert await ids(kid="k2") == {"r2"}
    assert await ids(signer_id="phantom") == set()


async def test_offset_page(audit: RedisAuditStore) -> None:
    for i in range(10):
        await audit.record(rec(f"r{i:02d}", at=NOW + timedelta(seconds=i)))
    page = await audit.query(AuditQuery(limit=3, offset=2))
    assert page.total == 10
    assert [r.id for r in page.records] == ["r07", "r06", "r05"]
    assert page.limit == 3 and page.offset == 2
    assert page.next_cursor is not None


async def test_cursor_walk(audit: RedisAuditStore) -> None:
    for i in range(10):
        await audit.record(rec(f"r{i:02d}", at=NOW + timedelta(seconds=i)))
    pages = []
    cursor = None
    while True:
        page = await audit.query(AuditQuery(limit=3, cursor=cursor))
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p.records) for p in pages] == [3, 3, 3, 1]
    ids = [r.id for p in pages for r in p.records]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 10
    assert pages[0].total == 10
    assert all(p.total is None and p.offset == 0 for p in pages[1:])


async def test_cursor_walk_exact_multiple(audit: RedisAuditStore) -> None:
    for i in range(6):
        await audit.record(rec(f"r{i}", at=NOW + timedelta(seconds=i)))
    assert [len(p) for p in await walk(audit, AuditQuery(limit=3))] == [3, 3]
    first = await audit.query(AuditQuery(limit=5))
    assert first.next_cursor is not None and first.total == 6


async def test_same_millisecond_cursor(audit: RedisAuditStore) -> None:
    for i, id in enumerate("abcdefg"):
        # Same millisecond, different microseconds: the sort key is (ms, id).
        await audit.record(rec(id, at=NOW.replace(microsecond=123000 + (7 - i) * 100)))
    pages = await walk(audit, AuditQuery(limit=2))
    assert [i for p in pages for i in p] == list("gfedcba")


async def test_limit_clamp_and_cursor_errors(audit: RedisAuditStore) -> None:
    for i in range(3):
        await audit.record(rec(f"r{i}", at=NOW + timedelta(seconds=i)))
    assert len((await audit.query(AuditQuery(limit=0))).records) == 1
    assert (await audit.query(AuditQuery(limit=5000))).limit == 1000
    assert (await audit.query(AuditQuery())).limit == 50
    for bad in ("not-base64!!!", "aGVsbG8"):
        with pytest.raises(AuditSerializationError):
            await audit.query(AuditQuery(cursor=bad))
    import base64

    v2 = base64.urlsafe_b64encode(b'{"v":2,"k":"ts","t":1,"i":"x"}').rstrip(b"=").decode()
    with pytest.raises(AuditSerializationError, match="unsupported cursor version: 2"):
        await audit.query(AuditQuery(cursor=v2))
    ts = Cursor("ts", "x", ts_ms=1).encode()
    with pytest.raises(AuditSerializationError):
        await audit.query(AuditQuery(cursor=ts, sort_by_sequence_asc=True))


async def test_time_range(audit: RedisAuditStore) -> None:
    r1 = rec("r1", at=NOW - timedelta(hours=2))
    r2 = rec("r2", at=NOW)
    await audit.record(r1)
    await audit.record(r2)
    hour_ago = NOW - timedelta(hours=1)
    assert [r.id for r in (await audit.query(AuditQuery(from_=hour_ago))).records] == ["r2"]
    assert [r.id for r in (await audit.query(AuditQuery(to=hour_ago))).records] == ["r1"]
    assert [r.id for r in (await audit.query(AuditQuery(from_=r2.dispatched_at))).records] == ["r2"]
    assert [r.id for r in (await audit.query(AuditQuery(to=r1.dispatched_at))).records] == ["r1"]
    # Sub-millisecond bounds are exact.
    assert (await audit.query(AuditQuery(to=r2.dispatched_at - timedelta(microseconds=1)))).total == 1
    assert (await audit.query(AuditQuery(from_=r2.dispatched_at + timedelta(microseconds=1)))).total == 0


async def test_tenant_scope(audit: RedisAuditStore) -> None:
    tenants = ["acme", "acme.prod", "acme.prod.eu", "acmecorp", "globex", "initech", "acxme.prod"]
    for i, tenant in enumerate(tenants):
        await audit.record(rec(f"r{i}", tenant=tenant, at=NOW + timedelta(seconds=i)))

    async def tenants_for(**kw: Any) -> set[str]:
        return {r.tenant for r in (await audit.query(AuditQuery(**kw))).records}

    scoped = await tenants_for(tenant_scope=["acme", "globex"])
    assert scoped == {"acme", "acme.prod", "acme.prod.eu", "globex"}
    assert len(await tenants_for()) == 7
    assert await tenants_for(tenant="acme.prod", tenant_scope=["acme"]) == {"acme.prod"}
    assert await tenants_for(tenant_scope=["ac_me"]) == set()


async def test_cleanup_expired(redis_url: str, prefix: str) -> None:
    clock = FakeClock(NOW)
    async with RedisAuditStore(redis_url, prefix=prefix, clock=clock) as audit:
        await audit.record(rec("r1", action_id="a-exp", expires_at=NOW - timedelta(seconds=60)))
        await audit.record(rec("r2", expires_at=NOW + timedelta(hours=1), sequence_number=0))
        await audit.record(rec("r3", sequence_number=1))
        await audit.record(rec("r4", expires_at=NOW + timedelta(microseconds=300), sequence_number=2))
        assert await audit.cleanup_expired() == 1
        assert await audit.get_by_id("r1") is None
        assert await audit.get_by_action_id("a-exp") is None
        assert (await audit.query(AuditQuery())).total == 3
        clock.advance(timedelta(hours=2))
        assert await audit.cleanup_expired() == 2
        assert await audit.cleanup_expired() == 0
        # The sequence number of a removed record is free again.
        await audit.record(rec("r5", sequence_number=0))


async def test_cleanup_many(redis_url: str, prefix: str) -> None:
    clock = FakeClock(NOW)
    async with RedisAuditStore(redis_url, prefix=prefix, clock=clock) as audit:
        await asyncio.gather(
            *(
                audit.record(rec(f"r{i}", action_id=f"a{i}", expires_at=NOW - timedelta(seconds=1)))
                for i in range(1200)
            )
        )
        await audit.record(rec("keep"))
        assert await audit.cleanup_expired() == 1200
        page = await audit.query(AuditQuery(namespace="ns1", tenant="t1"))
        assert page.total == 1


async def test_duplicate_sequence(audit: RedisAuditStore) -> None:
    await audit.record(rec("s1", sequence_number=0))
    with pytest.raises(AuditStorageError, match="unique"):
        await audit.record(rec("s2", sequence_number=0))
    assert await audit.get_by_id("s2") is None
    await audit.record(rec("s3", tenant="t2", sequence_number=0))
    await audit.record(rec("n1"))
    await audit.record(rec("n2"))
    # Namespace/tenant containing ":" cannot collide with another split of the same text.
    await audit.record(rec("c1", namespace="a:b", tenant="c", sequence_number=5))
    await audit.record(rec("c2", namespace="a", tenant="b:c", sequence_number=5))


async def test_sequence_sorts_and_seq_cursor(audit: RedisAuditStore) -> None:
    for i in (3, 0, 2, 1):
        await audit.record(rec(f"s{i}", sequence_number=i, at=NOW + timedelta(seconds=10 - i)))
    await audit.record(rec("nulls", at=NOW))
    page = await audit.query(AuditQuery(namespace="ns1", tenant="t1", sort_by_sequence_asc=True, limit=2))
    assert [r.id for r in page.records] == ["s0", "s1"] and page.total == 5
    pages = await walk(audit, AuditQuery(namespace="ns1", tenant="t1", sort_by_sequence_asc=True, limit=2))
    assert pages == [["s0", "s1"], ["s2", "s3"], ["nulls"]]
    desc = await audit.query(AuditQuery(sort_by_sequence_desc=True))
    assert [r.id for r in desc.records] == ["s3", "s2", "s1", "s0", "nulls"]
    seq_cursor = Cursor("seq", "x", seq=1).encode()
    with pytest.raises(AuditSerializationError, match="requires sort_by_sequence_asc"):
        await audit.query(AuditQuery(cursor=seq_cursor))


async def test_concurrent_records_are_pipelined(audit: RedisAuditStore) -> None:
    await audit.get_by_id("warm")
    batches = audit.client.stats.batches
    await asyncio.gather(*(audit.record(rec(f"r{i}", action_id=f"a{i}")) for i in range(100)))
    assert audit.client.stats.batches - batches == -(-100 // MAX_BATCH)  # not one write per record
    assert (await audit.query(AuditQuery())).total == 100


async def test_write_behind(redis_url: str, prefix: str) -> None:
    async with RedisAuditStore(
        redis_url, prefix=prefix, write_behind=True, deferred_flush_delay=None
    ) as audit:
        stats = audit.client.stats
        await audit.get_by_id("warm")
        commands = stats.commands
        for i in range(20):
            await audit.record(rec(f"w{i}", action_id=f"a{i}"))
        assert stats.commands == commands  # nothing sent yet
        # A read goes out after the queued writes on the same connection: it sees them.
        assert (await audit.query(AuditQuery())).total == 20
        await audit.record(rec("w0"))  # duplicate, reported by flush
        with pytest.raises(AuditStorageError, match="duplicate id w0"):
            await audit.flush()
        await audit.flush()  # errors are reported once


async def test_write_behind_flushed_on_close(redis_url: str, prefix: str) -> None:
    audit = RedisAuditStore(redis_url, prefix=prefix, write_behind=True, deferred_flush_delay=None)
    for i in range(50):
        await audit.record(rec(f"w{i}", action_id=f"a{i}"))
    await audit.aclose()
    await audit.aclose()
    async with RedisAuditStore(redis_url, prefix=prefix) as again:
        assert (await again.query(AuditQuery())).total == 50


async def test_write_behind_sequenced_records_wait(redis_url: str, prefix: str) -> None:
    async with RedisAuditStore(redis_url, prefix=prefix, write_behind=True) as audit:
        await audit.record(rec("s0", sequence_number=0))
        with pytest.raises(AuditStorageError, match="unique"):
            await audit.record(rec("s1", sequence_number=0))


async def test_unserializable_payload(audit: RedisAuditStore) -> None:
    with pytest.raises(AuditSerializationError):
        await audit.record(rec("bad", action_payload={"x": object()}))


async def test_unreachable_server() -> None:
    audit = RedisAuditStore("redis://127.0.0.1:6390", connect_timeout=1)
    with pytest.raises(AuditStorageError, match=r"redis://127\.0\.0\.1:6390"):
        await audit.get_by_id("x")
    await audit.aclose()


async def test_open_audit_store(redis_url: str, prefix: str) -> None:
    from acteon.audit import open_audit_store

    store = open_audit_store(redis_url, prefix=prefix)
    assert isinstance(store, RedisAuditStore)
    async with store:
        await store.record(rec("o1"))
        assert (await store.get_by_id("o1")) is not None


# --------------------------------------------------------------------------- differential test


def _random_records(rng: random.Random, n: int) -> list[AuditRecord]:
    out = []
    seqs: dict[tuple[str, str], int] = {}
    for i in range(n):
        ns = rng.choice(["ns1", "ns2"])
        tenant = rng.choice(["acme", "acme.prod", "globex"])
        at = NOW + timedelta(milliseconds=rng.randint(0, 40), microseconds=rng.randint(0, 999))
        seq = None
        if rng.random() < 0.5:
            seq = seqs.get((ns, tenant), 0)
            seqs[(ns, tenant)] = seq + 1
        out.append(
            rec(
                f"id{rng.randint(0, 10**6):07d}-{i}",
                action_id=f"a{rng.randint(0, 20)}",
                at=at,
                namespace=ns,
                tenant=tenant,
                provider=rng.choice(["email", "sms"]),
                outcome=rng.choice(["executed", "failed"]),
                chain_id=rng.choice([None, "c1"]),
                caller_id=rng.choice(["", "alice"]),
                signer_id=rng.choice([None, "ci-bot"]),
                kid=rng.choice([None, "k1"]),
                sequence_number=seq,
            )
        )
    return out


def _random_query(rng: random.Random) -> AuditQuery:
    q = AuditQuery(limit=rng.choice([1, 3, 7, 50]))
    for name, values in (
        ("namespace", ["ns1", "ns2"]),
        ("tenant", ["acme", "globex"]),
        ("provider", ["email", "sms"]),
        ("outcome", ["executed"]),
        ("chain_id", ["c1"]),
        ("caller_id", ["alice"]),
        ("signer_id", ["ci-bot"]),
        ("kid", ["k1"]),
        ("action_id", ["a1", "a2"]),
    ):
        if rng.random() < 0.2:
            setattr(q, name, rng.choice(values))
    if rng.random() < 0.2:
        q.tenant_scope = ["acme"]
    if rng.random() < 0.2:
        q.from_ = NOW + timedelta(milliseconds=rng.randint(0, 20), microseconds=rng.randint(0, 999))
    if rng.random() < 0.2:
        q.to = NOW + timedelta(milliseconds=rng.randint(20, 40), microseconds=rng.randint(0, 999))
    if rng.random() < 0.15:
        q.sort_by_sequence_asc = True
    elif rng.random() < 0.1:
        q.sort_by_sequence_desc = True
    if rng.random() < 0.3:
        q.offset = rng.randint(0, 10)
    return q


async def test_queries_match_memory_store(audit: RedisAuditStore) -> None:
    rng = random.Random(99)
    memory = MemoryAuditStore()
    records = _random_records(rng, 300)
    for r in records:
        await memory.record(r)
    await asyncio.gather(*(audit.record(r) for r in records))
    for _ in range(150):
        q = _random_query(rng)
        expected = await memory.query(q)
        got = await audit.query(q)
        assert [r.id for r in got.records] == [r.id for r in expected.records], q
        assert (got.total, got.limit, got.offset, got.next_cursor) == (
            expected.total,
            expected.limit,
            expected.offset,
            expected.next_cursor,
        ), q
        if not q.sort_by_sequence_desc and rng.random() < 0.3:
            q.offset = None
            assert await walk(audit, q) == await walk(
                memory, AuditQuery(**{f: getattr(q, f) for f in AuditQuery.__dataclass_fields__})
            )
    for action in ("a1", "a5", "a19"):
        a = await audit.get_by_action_id(action)
        b = await memory.get_by_action_id(action)
        assert (a and a.id) == (b and b.id)
