"""Part D items 50-52 and 54: hash chain linking, hashing, verification and retries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from acteon._exceptions import AuditStorageError
from acteon.audit import (
    AuditPage,
    AuditQuery,
    AuditRecord,
    AuditStore,
    HashChainAuditStore,
    MemoryAuditStore,
)
from acteon.audit.hash_chain import legacy_record_hash, record_hash
from tests.audit_wrappers.conftest import NOW, rec, seconds, tamper

pytestmark = pytest.mark.anyio


async def chain_of(store: HashChainAuditStore, n: int, tenant: str = "t1") -> list[AuditRecord]:
    for i in range(n):
        await store.record(rec(f"{tenant}-r{i + 1}", tenant=tenant, at=NOW + seconds(i), action_payload={"i": i}))
    page = await store.query(AuditQuery(namespace="ns", tenant=tenant, limit=1000, sort_by_sequence_asc=True))
    return page.records


async def test_links_and_per_tenant_sequences(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    r = await chain_of(chain, 3)
    assert [x.sequence_number for x in r] == [0, 1, 2]
    assert r[0].previous_hash is None
    assert r[1].previous_hash == r[0].record_hash and r[2].previous_hash == r[1].record_hash
    other = await chain_of(chain, 2, tenant="t2")
    assert [x.sequence_number for x in other] == [0, 1] and other[0].previous_hash is None


def test_legacy_vectors() -> None:
    r1 = AuditRecord(
        id="r1", action_id="a1", namespace="ns", tenant="t1", provider="email", action_type="send_email",
        verdict="allow", outcome="executed", dispatched_at=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
        completed_at=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
    )
    h1 = legacy_record_hash(r1)
    assert h1 == "1084e4a5d0ba74447f2553d08285f6b16c8dbe1754526282aa6a5aab0da41b66"
    at = datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    r2 = dataclasses.replace(r1, id="r2", action_id="a2", dispatched_at=at, previous_hash=h1)
    assert legacy_record_hash(r2) == "8c483a23c8ad43dd3cf4faadd42a6728a5f66192bafd79fea438eb43d33801a7"


def test_acteon_hash_covers_every_stored_field() -> None:
    base = rec("r1", action_payload={"a": 1}, sequence_number=0)
    h = record_hash(base)
    assert record_hash(dataclasses.replace(base, record_hash="x")) == h  # its own hash is excluded
    for change in (
        {"action_payload": {"a": 2}}, {"action_payload": "ENC[...]"}, {"sequence_number": 1},
        {"metadata": {"k": "v"}}, {"previous_hash": "p"}, {"outcome_details": {"x": 1}},
        {"duration_ms": 5}, {"caller_id": "bob"}, {"completed_at": NOW + seconds(1)},
        {"attachment_metadata": [{"id": "x"}]}, {"matched_rule": "r"},
    ):
        assert record_hash(dataclasses.replace(base, **change)) != h, change


async def test_tip_follows_sequence_not_time(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    await chain.record(rec("act-a-intent", action_id="act-a", outcome="pending"))
    await chain.record(rec("act-a", action_id="act-a"))
    await chain.record(rec("act-b-intent", action_id="act-b", outcome="pending"))
    page = await inner.query(AuditQuery(namespace="ns", tenant="t1", sort_by_sequence_asc=True))
    assert [(r.id, r.sequence_number) for r in page.records] == [("act-a-intent", 0), ("act-a", 1), ("act-b-intent", 2)]
    result = await chain.verify_chain("ns", "t1")
    assert result.valid and result.records_checked == 3


async def test_verify_valid_and_tampered(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    await chain_of(chain, 20)
    ok = await chain.verify_chain("ns", "t1")
    assert ok.valid and ok.records_checked == 20
    assert ok.first_record_id == "t1-r1" and ok.last_record_id == "t1-r20" and ok.first_broken_at is None
    tamper(inner, "t1-r2", outcome="failed")
    bad = await chain.verify_chain("ns", "t1")
    assert not bad.valid and bad.first_broken_at == "t1-r2"


@pytest.mark.parametrize(
    "change",
    [{"previous_hash": "bogus"}, {"record_hash": None}, {"action_payload": {"i": 99}}, {"metadata": {"x": 1}}],
)
async def test_verify_detects_each_kind_of_tampering(inner: AuditStore, change: dict[str, object]) -> None:
    chain = HashChainAuditStore(inner)
    await chain_of(chain, 4)
    tamper(inner, "t1-r2", **change)
    result = await chain.verify_chain("ns", "t1")
    assert not result.valid and result.first_broken_at == "t1-r2"


async def test_empty_chain_and_tenant_isolation(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    empty = await chain.verify_chain("ns", "nobody")
    assert empty.valid and empty.records_checked == 0 and empty.first_record_id is None
    await chain_of(chain, 3, tenant="A")
    await chain_of(chain, 3, tenant="B")
    tamper(inner, "B-r2", outcome="failed")
    assert (await chain.verify_chain("ns", "A")).valid
    assert not (await chain.verify_chain("ns", "B")).valid


async def test_long_chain_verifies_across_pages() -> None:
    chain = HashChainAuditStore(MemoryAuditStore())
    for i in range(1201):
        await chain.record(rec(f"r{i:05d}", at=NOW + seconds(i)))
    result = await chain.verify_chain("ns", "t1")
    assert result.valid and result.records_checked == 1201 and result.last_record_id == "r01200"


async def test_verify_any_time_range(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    await chain_of(chain, 20)
    r5 = await inner.get_by_id("t1-r5")
    assert r5 is not None
    result = await chain.verify_chain("ns", "t1", from_=r5.dispatched_at)
    assert result.valid and result.records_checked == 16 and result.first_record_id == "t1-r5"
    window = await chain.verify_chain("ns", "t1", from_=r5.dispatched_at, to=NOW + seconds(9))
    assert window.valid and window.records_checked == 6
    tamper(inner, "t1-r7", outcome="failed")
    assert (await chain.verify_chain("ns", "t1", from_=r5.dispatched_at)).first_broken_at == "t1-r7"


async def test_verify_detects_a_removed_record(inner: AuditStore) -> None:
    chain = HashChainAuditStore(inner)
    await chain_of(chain, 5)
    tamper(inner, "t1-r3", sequence_number=None)  # as if the row had been taken out of the chain
    result = await chain.verify_chain("ns", "t1")
    assert not result.valid and result.first_broken_at == "t1-r4"


class Flaky(MemoryAuditStore):
    """Fails ``record`` with a given error a given number of times."""

    def __init__(self, error: str, failures: int) -> None:
        super().__init__()
        self.error = error
        self.failures = failures
        self.attempts = 0

    async def record(self, entry: AuditRecord) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise AuditStorageError(self.error)
        await super().record(entry)


def no_sleep(chain: HashChainAuditStore, slept: list[float]) -> None:
    async def sleep(s: float) -> None:
        slept.append(s)

    chain._sleep = sleep


async def test_retries_on_conflict_then_succeeds() -> None:
    inner = Flaky("unique constraint violation: duplicate sequence_number", 2)
    chain = HashChainAuditStore(inner)
    slept: list[float] = []
    no_sleep(chain, slept)
    await chain.record(rec("r1"))
    assert inner.attempts == 3 and len(slept) == 2
    assert 0.010 <= slept[0] <= 0.020 and 0.020 <= slept[1] <= 0.040


async def test_gives_up_after_five_conflicts() -> None:
    inner = Flaky("unique constraint violation: duplicate sequence_number", 99)
    chain = HashChainAuditStore(inner)
    slept: list[float] = []
    no_sleep(chain, slept)
    with pytest.raises(AuditStorageError, match=r"after 5 retries for \(ns, t1\)") as info:
        await chain.record(rec("r1"))
    assert "duplicate" in str(info.value)
    assert inner.attempts == 5 and len(slept) == 5


async def test_other_errors_propagate_at_once() -> None:
    inner = Flaky("connection refused", 99)
    chain = HashChainAuditStore(inner)
    with pytest.raises(AuditStorageError, match="connection refused"):
        await chain.record(rec("r1"))
    assert inner.attempts == 1


async def test_failing_tip_query_propagates() -> None:
    class BrokenQuery(MemoryAuditStore):
        async def query(self, query: AuditQuery) -> AuditPage:
            raise AuditStorageError("unique but the read failed")

    with pytest.raises(AuditStorageError, match="read failed"):
        await HashChainAuditStore(BrokenQuery()).record(rec("r1"))


async def test_concurrent_writers_in_one_process(inner: AuditStore) -> None:
    import anyio

    chain = HashChainAuditStore(inner)
    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(chain.record, rec(f"c{i:02d}", at=NOW + seconds(i)))
    page = await inner.query(AuditQuery(namespace="ns", tenant="t1", limit=100, sort_by_sequence_asc=True))
    assert [r.sequence_number for r in page.records] == list(range(30))
    assert (await chain.verify_chain("ns", "t1")).valid
