"""The audit store contract (Part D 35-46 of ``state-audit.md``)."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acteon._exceptions import AuditError, AuditStorageError
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditQuery, AuditRecord, Cursor
from acteon.testing._contracts._support import TimeControl

_T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)


def _record(
    id: str,
    at: datetime = _T0,
    *,
    action_id: str | None = None,
    namespace: str = "ns",
    tenant: str = "t",
    **fields: Any,
) -> AuditRecord:
    values: dict[str, Any] = {
        "provider": "email",
        "action_type": "send_email",
        "verdict": "allow",
        "outcome": "executed",
        "completed_at": at + timedelta(milliseconds=5),
        "duration_ms": 5,
    }
    values.update(fields)
    return AuditRecord(
        id=id,
        action_id=action_id or f"act-{id}",
        namespace=namespace,
        tenant=tenant,
        dispatched_at=at,
        **values,
    )


async def _record_all(store: AuditStore, records: list[AuditRecord]) -> None:
    for r in records:
        await store.record(r)


async def _ids(store: AuditStore, **query: Any) -> list[str]:
    page = await store.query(AuditQuery(**query))
    return [r.id for r in page.records]


async def _walk(store: AuditStore, **query: Any) -> list[list[str]]:
    """Follow ``next_cursor`` from the first page; the ids of each page."""
    pages: list[list[str]] = []
    cursor = None
    for _ in range(100):
        page = await store.query(AuditQuery(cursor=cursor, **query))
        pages.append([r.id for r in page.records])
        if cursor is not None:
            assert page.total is None
            assert page.offset == 0
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("cursor walk did not end")


@pytest.mark.anyio
class AuditStoreContract:
    """Behaviour every :class:`~acteon.audit.AuditStore` must show (Part D 35-46).

    Needs the fixtures ``audit_store`` (started, empty) and ``time_control`` (its
    ``now()`` must be the store's clock, used by ``cleanup_expired``).
    """

    async def test_round_trip_all_fields(self, audit_store: AuditStore) -> None:
        """D35: every field comes back as recorded; unknown ids read as ``None``."""
        attachment = {
            "id": "x", "name": "f", "filename": "f.txt", "content_type": "text/plain", "size_bytes": 3,
        }
        r1 = AuditRecord(
            id="r1",
            action_id="a1",
            chain_id="chain-1",
            namespace="ns",
            tenant="t",
            provider="email",
            action_type="send_email",
            verdict="allow",
            matched_rule="rule-1",
            outcome="executed",
            action_payload={"to": "a@example.com", "n": 3, "x": [1, 2.5, None, True], "ü": "ñ ✓"},
            verdict_details={"verdict": "allow"},
            outcome_details={"status": 200, "body": {"ok": True}},
            metadata={"env": "prod", "__dedup_key": "d-1"},
            dispatched_at=_T0 + timedelta(microseconds=123_456),
            completed_at=_T0 + timedelta(milliseconds=500),
            duration_ms=500,
            expires_at=_T0 + timedelta(days=30),
            caller_id="alice",
            auth_method="api_key",
            record_hash="ab" * 32,
            previous_hash="cd" * 32,
            sequence_number=7,
            attachment_metadata=[attachment],
            signature="c2lnbmF0dXJl",
            signer_id="ci-bot",
            kid="k1",
            canonical_hash="ef" * 32,
        )
        assert all(getattr(r1, f.name) not in (None, "", [], {}) for f in dataclasses.fields(r1))
        await audit_store.record(r1)
        got = await audit_store.get_by_id("r1")
        assert got is not None
        assert dataclasses.asdict(got) == dataclasses.asdict(r1)
        assert got.to_dict() == r1.to_dict()
        by_action = await audit_store.get_by_action_id("a1")
        assert by_action is not None and by_action.id == "r1"
        assert await audit_store.get_by_id("nope") is None
        assert await audit_store.get_by_action_id("nope") is None

    async def test_minimal_record_round_trip(self, audit_store: AuditStore) -> None:
        r = _record("min", action_payload=None, verdict_details={}, outcome_details={}, metadata={})
        await audit_store.record(r)
        got = await audit_store.get_by_id("min")
        assert got is not None
        assert dataclasses.asdict(got) == dataclasses.asdict(r)
        assert got.caller_id == "" and got.attachment_metadata == [] and got.sequence_number is None

    async def test_get_by_action_id_returns_most_recent(self, audit_store: AuditStore) -> None:
        """D36: latest ``dispatched_at`` wins; on a tie the non-intent record wins."""
        await audit_store.record(_record("r1", _T0 - timedelta(seconds=10), action_id="a1"))
        await audit_store.record(_record("r2", _T0, action_id="a1"))
        latest = await audit_store.get_by_action_id("a1")
        assert latest is not None and latest.id == "r2"

        await audit_store.record(_record("x-intent", _T0, action_id="x", outcome="pending"))
        await audit_store.record(_record("x", _T0, action_id="x"))
        assert (found := await audit_store.get_by_action_id("x")) is not None and found.id == "x"
        # The order of recording does not matter.
        await audit_store.record(_record("y", _T0, action_id="y"))
        await audit_store.record(_record("y-intent", _T0, action_id="y", outcome="pending"))
        assert (found := await audit_store.get_by_action_id("y")) is not None and found.id == "y"

    async def test_equality_filters(self, audit_store: AuditStore) -> None:
        """D37: every equality filter, including ``caller_id``; NULL never matches."""
        await _record_all(
            audit_store,
            [
                _record("r1", _T0, namespace="ns1", caller_id="alice", matched_rule="block", chain_id="c1"),
                _record("r2", _T0 + timedelta(seconds=1), namespace="ns2", caller_id="bob",
                        provider="sms", outcome="failed", verdict="deny", action_type="page"),
                _record("r3", _T0 + timedelta(seconds=2), namespace="ns1", tenant="t2", action_id="shared"),
            ],
        )
        page = await audit_store.query(AuditQuery(namespace="ns1", tenant="t"))
        assert page.total == 1 and [r.id for r in page.records] == ["r1"]
        assert await _ids(audit_store, namespace="ns1") == ["r3", "r1"]
        assert await _ids(audit_store, caller_id="alice") == ["r1"]
        assert await _ids(audit_store, caller_id="") == ["r3"]
        assert await _ids(audit_store, matched_rule="block") == ["r1"]
        assert await _ids(audit_store, matched_rule="") == []
        assert await _ids(audit_store, chain_id="c1") == ["r1"]
        assert await _ids(audit_store, provider="sms") == ["r2"]
        assert await _ids(audit_store, outcome="failed") == ["r2"]
        assert await _ids(audit_store, verdict="deny") == ["r2"]
        assert await _ids(audit_store, action_type="page") == ["r2"]
        assert await _ids(audit_store, action_id="shared") == ["r3"]
        assert await _ids(audit_store, namespace="ns1", caller_id="bob") == []

    async def test_signer_and_kid_filters(self, audit_store: AuditStore) -> None:
        """D38: the signer/kid matrix."""
        second = timedelta(seconds=1)
        await _record_all(
            audit_store,
            [
                _record("r1", _T0, signer_id="ci-bot", kid="k1"),
                _record("r2", _T0 + second, signer_id="ci-bot", kid="k2"),
                _record("r3", _T0 + 2 * second, signer_id="deploy-svc", kid="k1"),
                _record("r4", _T0 + 3 * second, signer_id="ci-bot"),
                _record("r5", _T0 + 4 * second),
            ],
        )
        assert sorted(await _ids(audit_store, signer_id="ci-bot")) == ["r1", "r2", "r4"]
        assert await _ids(audit_store, signer_id="ci-bot", kid="k1") == ["r1"]
        assert sorted(await _ids(audit_store, kid="k1")) == ["r1", "r3"]
        assert await _ids(audit_store, kid="k2") == ["r2"]
        assert await _ids(audit_store, signer_id="phantom") == []

    async def test_default_order_is_newest_first(self, audit_store: AuditStore) -> None:
        await _record_all(audit_store, [_record(f"r{i}", _T0 + timedelta(seconds=i)) for i in (2, 0, 1)])
        page = await audit_store.query(AuditQuery())
        assert [r.id for r in page.records] == ["r2", "r1", "r0"]
        assert page.total == 3 and page.limit == 50 and page.offset == 0 and page.next_cursor is None

    async def test_offset_page(self, audit_store: AuditStore) -> None:
        """D39: ``limit``/``offset`` with the full ``total``; a further page has a cursor."""
        await _record_all(audit_store, [_record(f"r{i}", _T0 + timedelta(seconds=i)) for i in range(10)])
        page = await audit_store.query(AuditQuery(limit=3, offset=2))
        assert page.total == 10
        assert [r.id for r in page.records] == ["r7", "r6", "r5"]
        assert page.limit == 3 and page.offset == 2
        assert page.next_cursor is not None
        rest = await audit_store.query(AuditQuery(limit=3, cursor=page.next_cursor))
        assert [r.id for r in rest.records] == ["r4", "r3", "r2"]
        last = await audit_store.query(AuditQuery(limit=3, offset=8))
        assert [r.id for r in last.records] == ["r1", "r0"] and last.next_cursor is None
        beyond = await audit_store.query(AuditQuery(limit=3, offset=20))
        assert beyond.records == [] and beyond.total == 10

    async def test_cursor_walk(self, audit_store: AuditStore) -> None:
        """D40: pages of 3,3,3,1, strictly descending, no repeats, no empty last page."""
        await _record_all(audit_store, [_record(f"r{i:02d}", _T0 + timedelta(seconds=i)) for i in range(10)])
        pages = await _walk(audit_store, limit=3)
        assert [len(p) for p in pages] == [3, 3, 3, 1]
        flat = [i for p in pages for i in p]
        assert flat == [f"r{i:02d}" for i in range(9, -1, -1)]

    async def test_cursor_walk_ends_without_empty_page(self, audit_store: AuditStore) -> None:
        await _record_all(audit_store, [_record(f"r{i}", _T0 + timedelta(seconds=i)) for i in range(6)])
        pages = await _walk(audit_store, limit=3)
        assert [len(p) for p in pages] == [3, 3]

    async def test_first_page_has_total_and_cursor(self, audit_store: AuditStore) -> None:
        await _record_all(audit_store, [_record(f"r{i}", _T0 + timedelta(seconds=i)) for i in range(5)])
        page = await audit_store.query(AuditQuery(limit=2))
        assert page.total == 5 and page.next_cursor is not None and len(page.records) == 2

    async def test_cursor_walk_same_millisecond(self, audit_store: AuditStore) -> None:
        """D41: records sharing one millisecond page by id, each exactly once."""
        at = _T0 + timedelta(microseconds=250)
        records = [_record(c, at + timedelta(microseconds=i * 100)) for i, c in enumerate("dagcfbe")]
        await _record_all(audit_store, records)
        pages = await _walk(audit_store, limit=2)
        assert [i for p in pages for i in p] == list("gfedcba")

    async def test_cursor_walk_with_filters(self, audit_store: AuditStore) -> None:
        await _record_all(
            audit_store,
            [
                _record(f"r{i:02d}", _T0 + timedelta(seconds=i // 2), tenant="t" if i % 3 else "u")
                for i in range(20)
            ],
        )
        expected = await _ids(audit_store, tenant="t", limit=1000)
        pages = await _walk(audit_store, tenant="t", limit=4)
        assert [i for p in pages for i in p] == expected
        assert len(expected) == len(set(expected)) == 13

    async def test_limit_clamp_and_cursor_errors(self, audit_store: AuditStore) -> None:
        """D42: limit 0 -> 1, 5000 -> 1000, default 50; bad cursors raise serialization errors."""
        await _record_all(audit_store, [_record(f"r{i:02d}", _T0 + timedelta(seconds=i)) for i in range(60)])
        assert len((await audit_store.query(AuditQuery(limit=0))).records) == 1
        big = await audit_store.query(AuditQuery(limit=5000))
        assert big.limit == 1000 and len(big.records) == 60
        default = await audit_store.query(AuditQuery())
        assert default.limit == 50 and len(default.records) == 50 and default.next_cursor is not None

        for bad in ("not-base64!!!", "aGVsbG8"):
            with pytest.raises(AuditError, match="serialization error"):
                await audit_store.query(AuditQuery(cursor=bad))
        v2 = Cursor("ts", "r01", ts_ms=1).encode().replace("eyJ2IjoxL", "eyJ2IjoyL")
        with pytest.raises(AuditError, match="unsupported cursor version: 2"):
            await audit_store.query(AuditQuery(cursor=v2))
        with pytest.raises(AuditError):
            await audit_store.query(AuditQuery(cursor=default.next_cursor, sort_by_sequence_asc=True))
        seq_cursor = Cursor("seq", "r01", seq=1).encode()
        with pytest.raises(AuditError):
            await audit_store.query(AuditQuery(cursor=seq_cursor))

    async def test_time_range_is_inclusive(self, audit_store: AuditStore) -> None:
        """D43: ``from``/``to`` bound ``dispatched_at`` inclusively."""
        r1 = _record("r1", _T0 - timedelta(hours=2))
        r2 = _record("r2", _T0)
        await _record_all(audit_store, [r1, r2])
        hour_ago = _T0 - timedelta(hours=1)
        assert await _ids(audit_store, from_=hour_ago) == ["r2"]
        assert await _ids(audit_store, to=hour_ago) == ["r1"]
        assert await _ids(audit_store, from_=r2.dispatched_at) == ["r2"]
        assert await _ids(audit_store, to=r1.dispatched_at) == ["r1"]
        assert await _ids(audit_store, from_=r1.dispatched_at, to=r2.dispatched_at) == ["r2", "r1"]

    async def test_time_bounds_use_full_precision(self, audit_store: AuditStore) -> None:
        at = _T0 + timedelta(microseconds=123_456)
        await audit_store.record(_record("r", at))
        us = timedelta(microseconds=1)
        assert await _ids(audit_store, from_=at) == ["r"]
        assert await _ids(audit_store, from_=at + us) == []
        assert await _ids(audit_store, to=at - us) == []
        assert await _ids(audit_store, to=at) == ["r"]

    async def test_tenant_scope(self, audit_store: AuditStore) -> None:
        """D44: a scope covers the tenant and its dotted children, nothing else; no LIKE wildcards."""
        tenants = [
            "acme", "acme.prod", "acme.prod.eu", "acmecorp", "globex", "initech", "acxme.prod", "acme.",
        ]
        await _record_all(
            audit_store, [_record(t, _T0 + timedelta(seconds=i), tenant=t) for i, t in enumerate(tenants)]
        )
        scoped = sorted(await _ids(audit_store, tenant_scope=["acme", "globex"]))
        assert scoped == ["acme", "acme.prod", "acme.prod.eu", "globex"]
        assert len(await _ids(audit_store, tenant_scope=[])) == len(tenants)
        assert await _ids(audit_store, tenant="acme.prod", tenant_scope=["acme"]) == ["acme.prod"]
        assert await _ids(audit_store, tenant="globex", tenant_scope=["acme"]) == []
        assert await _ids(audit_store, tenant_scope=["ac_me"]) == []
        assert await _ids(audit_store, tenant_scope=["ac%"]) == []
        assert sorted(await _ids(audit_store, tenant_scope=["acme.prod"])) == ["acme.prod", "acme.prod.eu"]
        page = await audit_store.query(AuditQuery(tenant_scope=["acme"]))
        assert page.total == 3

    async def test_cleanup_expired(self, audit_store: AuditStore, time_control: TimeControl) -> None:
        """D45: cleanup removes records whose expiry has passed, from every read path."""
        now = time_control.now()
        minute, hour = timedelta(seconds=60), timedelta(hours=1)
        await _record_all(
            audit_store,
            [
                _record("r1", now - 2 * hour, action_id="a1", expires_at=now - minute),
                _record("r2", now - hour, action_id="a2", expires_at=now + hour),
                _record("r3", now, action_id="a3"),
            ],
        )
        # Expired but not yet cleaned: still visible.
        assert sorted(await _ids(audit_store)) == ["r1", "r2", "r3"]
        assert await audit_store.cleanup_expired() == 1
        assert await audit_store.get_by_id("r1") is None
        assert await audit_store.get_by_action_id("a1") is None
        assert sorted(await _ids(audit_store)) == ["r2", "r3"]
        assert await audit_store.cleanup_expired() == 0

    async def test_duplicate_sequence_number_is_rejected(self, audit_store: AuditStore) -> None:
        """D46: ``(namespace, tenant, sequence_number)`` is unique; NULL never conflicts."""
        await audit_store.record(_record("s1", sequence_number=0))
        with pytest.raises(AuditStorageError, match="unique"):
            await audit_store.record(_record("s2", _T0 + timedelta(seconds=1), sequence_number=0))
        await audit_store.record(_record("s3", tenant="other", sequence_number=0))
        await audit_store.record(_record("n1"))
        await audit_store.record(_record("n2"))
        await audit_store.flush()
        assert await audit_store.get_by_id("s2") is None
        assert sorted(await _ids(audit_store)) == ["n1", "n2", "s1", "s3"]

    async def test_duplicate_id_is_rejected(self, audit_store: AuditStore) -> None:
        """A second record with the same id is refused by ``record`` or, if buffered, by ``flush``."""
        first = _record("dup", outcome="executed")
        await audit_store.record(first)
        with pytest.raises(AuditStorageError, match="unique"):
            await audit_store.record(_record("dup", outcome="failed"))
            await audit_store.flush()
        await audit_store.record(_record("after"))
        await audit_store.flush()
        got = await audit_store.get_by_id("dup")
        assert got is not None and got.outcome == "executed"
        assert await audit_store.get_by_id("after") is not None

    async def test_sequence_ascending_walk(self, audit_store: AuditStore) -> None:
        """``sort_by_sequence_asc``: (sequence, id) ascending, NULL last, seq cursors page it."""
        records = [_record(f"{t}{s}", _T0 + timedelta(seconds=s), tenant=t, sequence_number=s)
                   for t in ("a", "b") for s in range(4)]
        records += [_record("null-1", _T0), _record("null-2", _T0)]
        random.Random(3).shuffle(records)
        await _record_all(audit_store, records)
        pages = await _walk(audit_store, sort_by_sequence_asc=True, limit=3)
        expected = ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "null-1", "null-2"]
        assert [i for p in pages for i in p] == expected
        scoped = await _walk(audit_store, namespace="ns", tenant="a", sort_by_sequence_asc=True, limit=2)
        assert [i for p in scoped for i in p] == ["a0", "a1", "a2", "a3"]

    async def test_sequence_descending_order(self, audit_store: AuditStore) -> None:
        """``sort_by_sequence_desc``: (sequence, id) descending, NULL last, never paginated."""
        records = [_record(f"s{s}", _T0, sequence_number=s) for s in (0, 2, 1)]
        records.append(_record("null", _T0 + timedelta(seconds=5)))
        await _record_all(audit_store, records)
        page = await audit_store.query(AuditQuery(sort_by_sequence_desc=True))
        assert [r.id for r in page.records] == ["s2", "s1", "s0", "null"]
        tip_query = AuditQuery(namespace="ns", tenant="t", sort_by_sequence_desc=True, limit=1)
        tip = await audit_store.query(tip_query)
        assert [r.id for r in tip.records] == ["s2"] and tip.next_cursor is None

    async def test_records_are_readable_right_after_record(self, audit_store: AuditStore) -> None:
        """Reads see every record accepted before them (buffering backends flush first)."""
        for i in range(300):
            await audit_store.record(_record(f"r{i:03d}", _T0 + timedelta(milliseconds=i)))
        page = await audit_store.query(AuditQuery(limit=1))
        assert page.total == 300 and page.records[0].id == "r299"
        assert (await audit_store.get_by_id("r000")) is not None
        assert (await audit_store.get_by_action_id("act-r150")) is not None

