"""The state store contract (Part D 1-26 of ``state-audit.md``, plus the D7 windows)."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from acteon._exceptions import StateBackendError, StateSerializationError
from acteon.state._base import CasResult, StateStore
from acteon.state._keys import KeyKind, StateKey
from acteon.testing._contracts._support import TimeControl, _gather

NS = "test-ns"
TENANT = "test-tenant"


def _key(kind: str, id: str, ns: str = NS, tenant: str = TENANT) -> StateKey:
    return StateKey(ns, tenant, kind, id)


def _now_ms(tc: TimeControl) -> int:
    return int(tc.time() * 1000)


@pytest.mark.anyio
class StateStoreContract:
    """Behaviour every :class:`~acteon.state.StateStore` must show (Part D 1-26, plus D7 windows).

    Needs the fixtures ``state_store`` (started, empty) and ``time_control``.
    """

    # ------------------------------------------------------------- basics (D1-D5)

    async def test_missing_key_reads_as_absent(self, state_store: StateStore) -> None:
        """D1: an absent key is ``None`` for ``get``/``get_versioned``, ``False`` for ``delete``."""
        key = _key(KeyKind.STATE, "missing")
        assert await state_store.get(key) is None
        assert await state_store.get_versioned(key) is None
        assert await state_store.delete(key) is False

    async def test_set_then_get_bumps_version(self, state_store: StateStore) -> None:
        """D2: ``set`` creates version 1 and each later ``set`` adds one."""
        key = _key(KeyKind.STATE, "greeting")
        await state_store.set(key, "hello")
        assert await state_store.get(key) == "hello"
        assert await state_store.get_versioned(key) == ("hello", 1)
        await state_store.set(key, "world")
        assert await state_store.get_versioned(key) == ("world", 2)

    async def test_check_and_set_creates_only_when_absent(self, state_store: StateStore) -> None:
        """D3: ``check_and_set`` wins once; a key written by ``set`` blocks it too."""
        new = _key(KeyKind.DEDUP, "cas-new")
        assert await state_store.check_and_set(new, "v1") is True
        assert await state_store.get(new) == "v1"
        assert await state_store.check_and_set(new, "v2") is False
        assert await state_store.get(new) == "v1"

        existing = _key(KeyKind.DEDUP, "cas-existing")
        await state_store.set(existing, "v1")
        assert await state_store.check_and_set(existing, "v2") is False
        assert await state_store.get(existing) == "v1"

    async def test_check_and_set_repeated_calls(self, state_store: StateStore) -> None:
        key = _key(KeyKind.DEDUP, "a1")
        results = [await state_store.check_and_set(key, "x", ttl=60) for _ in range(3)]
        assert results == [True, False, False]

    async def test_delete_reports_live_entries_only(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D4: ``delete`` is ``True`` once for a live entry, ``False`` after and for an expired one."""
        key = _key(KeyKind.STATE, "bye")
        await state_store.set(key, "bye")
        assert await state_store.delete(key) is True
        assert await state_store.get(key) is None
        assert await state_store.delete(key) is False

        short = _key(KeyKind.STATE, "bye-expired")
        await state_store.set(short, "x", ttl=1 * time_control.scale)
        await time_control.advance(2)
        assert await state_store.delete(short) is False

    async def test_increment_arithmetic(self, state_store: StateStore) -> None:
        """D5: ``increment`` adds (negative too), treats absent as 0 and returns the new value."""
        key = _key(KeyKind.COUNTER, "counter-1")
        assert await state_store.increment(key, 1) == 1
        assert await state_store.increment(key, 5) == 6
        assert await state_store.increment(key, -2) == 4
        assert await state_store.get(key) == "4"
        assert await state_store.increment(key, 0) == 4

    async def test_increment_rejects_non_integer_value(self, state_store: StateStore) -> None:
        """D5: a non-integer value raises and stays as it was."""
        key = _key(KeyKind.COUNTER, "not-a-number")
        await state_store.set(key, "abc")
        with pytest.raises((StateSerializationError, StateBackendError)):
            await state_store.increment(key, 1)
        assert await state_store.get(key) == "abc"

    async def test_increment_reads_value_written_by_set(self, state_store: StateStore) -> None:
        """A counter seeded with ``set`` is the same entry ``increment`` adds to (D19)."""
        key = _key(KeyKind.COUNTER, "seeded")
        await state_store.set(key, "41")
        assert await state_store.increment(key, 1) == 42
        assert await state_store.get(key) == "42"
        versioned = await state_store.get_versioned(key)
        assert versioned is not None and versioned[0] == "42"

    async def test_values_are_opaque_strings(self, state_store: StateStore) -> None:
        values = ["", " padded ", "ünïcødé ✓", "line\nbreak", '{"json": [1, 2]}', "x" * 10_000]
        for i, value in enumerate(values):
            key = _key(KeyKind.STATE, f"opaque-{i}")
            await state_store.set(key, value)
            assert await state_store.get(key) == value

    async def test_canonical_strings_and_state_keys_are_the_same_key(self, state_store: StateStore) -> None:
        key = _key(KeyKind.STATE, "id:with:colons")
        await state_store.set(key, "v")
        assert await state_store.get(f"{NS}:{TENANT}:state:id:with:colons") == "v"
        assert await state_store.check_and_set(key.canonical, "w") is False

    # ------------------------------------------------------------- TTLs (D6-D15)

    async def test_increment_ttl_slides_on_every_call(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D6: each ``increment`` with a TTL moves the expiry to now + ttl."""
        key = _key(KeyKind.RATE_LIMIT, "sliding")
        ttl = 10 * time_control.scale
        assert await state_store.increment(key, 1, ttl=ttl) == 1
        await time_control.advance(8)
        assert await state_store.increment(key, 1, ttl=ttl) == 2
        await time_control.advance(7)  # t=15: expiry moved to 18
        assert await state_store.get(key) == "2"
        await time_control.advance(4)  # t=19
        assert await state_store.increment(key, 1, ttl=ttl) == 1

    async def test_increment_without_ttl_keeps_expiry(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D7: ``increment`` with ``ttl=None`` keeps the expiry set earlier."""
        key = _key(KeyKind.COUNTER, "keeps-ttl")
        await state_store.increment(key, 1, ttl=5 * time_control.scale)
        assert await state_store.increment(key, 1) == 2
        await time_control.advance(6)
        assert await state_store.get(key) is None

    async def test_compare_and_swap_checks_version(self, state_store: StateStore) -> None:
        """D8: CAS writes only on the expected version and reports the current one otherwise."""
        key = _key(KeyKind.STATE, "cas")
        await state_store.set(key, "initial")
        result = await state_store.compare_and_swap(key, 999, "updated")
        assert result == CasResult(False, "initial", 1)
        assert (await state_store.compare_and_swap(key, 1, "updated")).ok is True
        assert await state_store.get_versioned(key) == ("updated", 2)
        assert await state_store.compare_and_swap(key, 1, "x") == CasResult(False, "updated", 2)

    async def test_compare_and_swap_on_absent_key_conflicts(self, state_store: StateStore) -> None:
        """D9: CAS on a never-written key is ``Conflict(None, 0)`` and creates nothing."""
        key = _key(KeyKind.STATE, "never-written")
        assert await state_store.compare_and_swap(key, 0, "v") == CasResult(False, None, 0)
        assert await state_store.get(key) is None
        assert await state_store.compare_and_swap(key, 1, "v") == CasResult(False, None, 0)
        assert await state_store.get_versioned(key) is None

    async def test_compare_and_swap_on_check_and_set_key(self, state_store: StateStore) -> None:
        """D10: an entry made by ``check_and_set`` has version 1 and CAS works on it."""
        key = _key(KeyKind.DEDUP, "cas-on-cas")
        assert await state_store.check_and_set(key, "a") is True
        assert await state_store.get_versioned(key) == ("a", 1)
        assert (await state_store.compare_and_swap(key, 1, "b")).ok is True
        assert await state_store.get(key) == "b"
        assert await state_store.get_versioned(key) == ("b", 2)

    async def test_every_write_bumps_the_version(self, state_store: StateStore) -> None:
        """``set``, CAS and ``increment`` all move the version, so CAS readers never miss a write."""
        key = _key(KeyKind.STATE, "versions")
        await state_store.set(key, "1")
        first = await state_store.get_versioned(key)
        assert first is not None
        await state_store.increment(key, 1)
        second = await state_store.get_versioned(key)
        assert second is not None and second[1] > first[1]
        assert (await state_store.compare_and_swap(key, first[1], "stale")).ok is False
        assert (await state_store.compare_and_swap(key, second[1], "fresh")).ok is True
        await state_store.set(key, "again")
        third = await state_store.get_versioned(key)
        assert third is not None and third[1] == second[1] + 2

    async def test_ttl_expiry_hides_entry(self, state_store: StateStore, time_control: TimeControl) -> None:
        """D11: an expired entry reads as absent and is not scanned."""
        key = _key(KeyKind.STATE, "short-lived")
        await state_store.set(key, "short-lived", ttl=5 * time_control.scale)
        assert await state_store.get(key) == "short-lived"
        await time_control.advance(6)
        assert await state_store.get(key) is None
        assert await state_store.get_versioned(key) is None
        assert await state_store.scan_keys(NS, TENANT, KeyKind.STATE) == []
        assert await state_store.scan_keys_by_kind(KeyKind.STATE) == []

    async def test_long_ttl_is_readable(self, state_store: StateStore) -> None:
        key = _key(KeyKind.STATE, "long-ttl")
        await state_store.set(key, "v", ttl=3600)
        assert await state_store.get(key) == "v"

    async def test_check_and_set_after_expiry(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D12: an expired dedup marker counts as absent; the new entry starts at version 1."""
        key = _key(KeyKind.DEDUP, "expiring")
        ttl = 3 * time_control.scale
        assert await state_store.check_and_set(key, "v1", ttl=ttl) is True
        assert await state_store.check_and_set(key, "v1", ttl=ttl) is False
        await time_control.advance(4)
        assert await state_store.check_and_set(key, "v2") is True
        assert await state_store.get_versioned(key) == ("v2", 1)

    async def test_counter_resets_after_expiry(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D13: ``increment`` on an expired counter starts from 0."""
        key = _key(KeyKind.COUNTER, "resets")
        assert await state_store.increment(key, 10, ttl=2 * time_control.scale) == 10
        await time_control.advance(3)
        assert await state_store.increment(key, 1) == 1

    async def test_set_without_ttl_clears_previous_ttl(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D14: ``set(ttl=None)`` makes the entry permanent even if it had a TTL."""
        key = _key(KeyKind.STATE, "ttl-cleared")
        await state_store.set(key, "ephemeral", ttl=1 * time_control.scale)
        await state_store.set(key, "permanent")
        await time_control.advance(1.3)
        assert await state_store.get(key) == "permanent"

    async def test_set_with_ttl_replaces_expiry(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        key = _key(KeyKind.STATE, "ttl-replaced")
        await state_store.set(key, "a", ttl=10 * time_control.scale)
        await state_store.set(key, "b", ttl=2 * time_control.scale)
        await time_control.advance(3)
        assert await state_store.get(key) is None

    async def test_compare_and_swap_without_ttl_keeps_expiry(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D15: CAS with ``ttl=None`` keeps the expiry; with a TTL it replaces it."""
        key = _key(KeyKind.STATE, "cas-keeps-ttl")
        await state_store.set(key, "x", ttl=5 * time_control.scale)
        assert (await state_store.compare_and_swap(key, 1, "y")).ok is True
        await time_control.advance(6)
        assert await state_store.get(key) is None

        other = _key(KeyKind.STATE, "cas-new-ttl")
        await state_store.set(other, "x", ttl=2 * time_control.scale)
        assert (await state_store.compare_and_swap(other, 1, "y", ttl=10 * time_control.scale)).ok is True
        await time_control.advance(3)
        assert await state_store.get(other) == "y"

    async def test_compare_and_swap_on_expired_entry_conflicts(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        key = _key(KeyKind.STATE, "cas-expired")
        await state_store.set(key, "x", ttl=1 * time_control.scale)
        await time_control.advance(2)
        assert await state_store.compare_and_swap(key, 1, "y") == CasResult(False, None, 0)
        assert await state_store.get(key) is None

    # ------------------------------------------------------------- scans (D16-D17)

    async def test_scan_keys_literal_prefix_and_isolation(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """D16: ``scan_keys`` matches ``ns:tenant:kind:`` + a literal prefix, live entries only."""
        kind = "a2a_task_push_config"
        await state_store.set(_key(kind, "task1:cfgA"), "A")
        await state_store.set(_key(kind, "task1:cfgB"), "B")
        await state_store.set(_key(kind, "task2:cfgA"), "C")
        await state_store.set(_key(kind, "task1:cfgA", tenant="other"), "X")
        await state_store.set(_key(KeyKind.STATE, "task1:cfgA"), "Y")
        await state_store.set(_key(kind, "task1:cfgC"), "gone", ttl=1 * time_control.scale)
        await time_control.advance(2)

        found = await state_store.scan_keys(NS, TENANT, kind, "task1:")
        assert sorted(found) == [
            (f"{NS}:{TENANT}:{kind}:task1:cfgA", "A"),
            (f"{NS}:{TENANT}:{kind}:task1:cfgB", "B"),
        ]
        assert await state_store.scan_keys(NS, TENANT, kind, "task1_") == []
        everything = await state_store.scan_keys(NS, TENANT, kind)
        assert sorted(v for _, v in everything) == ["A", "B", "C"]
        assert await state_store.scan_keys(NS, "other", kind) == [(f"{NS}:other:{kind}:task1:cfgA", "X")]

    async def test_scan_keys_prefix_has_no_wildcards(self, state_store: StateStore) -> None:
        """No LIKE or glob semantics: ``_ % * ? [`` match only themselves, and case matters."""
        kind = KeyKind.STATE
        ids = ["a_c", "abc", "a%c", "axc", "a*c", "a?c", "a[b]c", "Abc"]
        for i in ids:
            await state_store.set(_key(kind, i), i)

        async def ids_with(prefix: str) -> list[str]:
            return sorted(v for _, v in await state_store.scan_keys(NS, TENANT, kind, prefix))

        assert await ids_with("a_") == ["a_c"]
        assert await ids_with("a%") == ["a%c"]
        assert await ids_with("a*") == ["a*c"]
        assert await ids_with("a?") == ["a?c"]
        assert await ids_with("a[") == ["a[b]c"]
        assert await ids_with("A") == ["Abc"]
        assert await ids_with("ab") == ["abc"]
        assert await ids_with("") == sorted(ids)

    async def test_scan_keys_by_kind_exact_segment(self, state_store: StateStore) -> None:
        """D17: exact third segment, canonical keys, every write path, no duplicates."""
        await state_store.set(StateKey("ns1", "t", KeyKind.STATE, "a"), "1")
        assert await state_store.check_and_set(StateKey("ns1", "t", KeyKind.STATE, "b"), "2") is True
        assert await state_store.increment(StateKey("ns2", "t", KeyKind.STATE, "c"), 3) == 3
        await state_store.set(StateKey("ns1", "t", KeyKind.EVENT_STATE, "d"), "4")
        await state_store.set(StateKey("ns1", "t", KeyKind.EVENT_STATE, "x:state:y"), "5")

        expected = [("ns1:t:state:a", "1"), ("ns1:t:state:b", "2"), ("ns2:t:state:c", "3")]
        assert sorted(await state_store.scan_keys_by_kind(KeyKind.STATE)) == expected

        assert (await state_store.compare_and_swap(StateKey("ns1", "t", KeyKind.STATE, "b"), 1, "2b")).ok
        expected[1] = ("ns1:t:state:b", "2b")
        assert sorted(await state_store.scan_keys_by_kind(KeyKind.STATE)) == expected
        assert sorted(await state_store.scan_keys_by_kind(KeyKind.EVENT_STATE)) == [
            ("ns1:t:event_state:d", "4"),
            ("ns1:t:event_state:x:state:y", "5"),
        ]
        assert await state_store.scan_keys_by_kind("stat") == []

    # ------------------------------------------------------------- indexes (D18-D20)

    async def _check_index(
        self,
        state_store: StateStore,
        index: Callable[[StateKey, int], Awaitable[None]],
        remove: Callable[[StateKey], Awaitable[None]],
        due: Callable[[int], Awaitable[list[str]]],
        kind: str,
    ) -> None:
        key = _key(kind, "reindex")
        await index(key, 1000)
        await index(key, 5000)
        assert await due(2000) == []
        assert await due(4999) == []
        assert await due(5000) == [key.canonical]
        await state_store.set(key, "data")
        assert await state_store.delete(key) is True
        assert await due(6000) == [key.canonical]  # the index is independent of the data
        await remove(key)
        assert await due(6000) == []
        await remove(key)  # absent: no-op
        assert await due(6000) == []

    async def test_timeout_index_replace_and_boundary(self, state_store: StateStore) -> None:
        """D18: re-indexing replaces, the bound is inclusive, removal is idempotent."""
        await self._check_index(
            state_store,
            state_store.index_timeout,
            state_store.remove_timeout_index,
            state_store.get_expired_timeouts,
            KeyKind.EVENT_TIMEOUT,
        )

    async def test_chain_ready_index_replace_and_boundary(self, state_store: StateStore) -> None:
        """D19: the chain-ready index behaves like the timeout index."""
        await self._check_index(
            state_store,
            state_store.index_chain_ready,
            state_store.remove_chain_ready_index,
            state_store.get_ready_chains,
            KeyKind.PENDING_CHAINS,
        )

    async def test_index_ordering(self, state_store: StateStore) -> None:
        """D20: due keys come back ordered by (ms, key)."""
        k1, k2, k3 = (_key(KeyKind.PENDING_SCHEDULED, f"k{i}") for i in (1, 2, 3))
        await state_store.index_timeout(k1, 3000)
        await state_store.index_timeout(k2, 1000)
        await state_store.index_timeout(k3, 2000)
        assert await state_store.get_expired_timeouts(5000) == [k2.canonical, k3.canonical, k1.canonical]
        tie_a, tie_b = _key(KeyKind.PENDING_CHAINS, "b"), _key(KeyKind.PENDING_CHAINS, "a")
        await state_store.index_chain_ready(tie_a, 1000)
        await state_store.index_chain_ready(tie_b, 1000)
        assert await state_store.get_ready_chains(1000) == [tie_b.canonical, tie_a.canonical]

    async def test_indexes_are_separate(self, state_store: StateStore) -> None:
        key = _key(KeyKind.PENDING_CHAINS, "only-chain")
        await state_store.index_chain_ready(key, 10)
        assert await state_store.get_expired_timeouts(10**13) == []
        assert await state_store.get_ready_chains(10**13) == [key.canonical]

    # ------------------------------------------------------------- sweep (D21)

    async def test_sweep_expired(self, state_store: StateStore, time_control: TimeControl) -> None:
        """D21: the sweeper removes expired entries only.

        A backend whose server expires keys itself (``real_time``) has nothing to
        sweep: there the expired entry must already be gone and ``sweep_expired``
        reports 0 -- in both cases live entries stay.
        """
        scale = time_control.scale
        swept = _key(KeyKind.DEDUP, "swept")
        assert await state_store.check_and_set(swept, "1", ttl=2 * scale)
        live = _key(KeyKind.DEDUP, "live")
        assert await state_store.check_and_set(live, "1", ttl=600 * scale)
        permanent = _key(KeyKind.STATE, "permanent")
        await state_store.set(permanent, "stays")
        assert await state_store.sweep_expired() == 0
        await time_control.advance(3)
        if time_control.real_time:
            assert await state_store.sweep_expired() == 0
        else:
            assert await state_store.sweep_expired() == 1
            assert await state_store.sweep_expired() == 0
        assert await state_store.get(swept) is None
        assert await state_store.check_and_set(swept, "2", ttl=60 * scale)  # the slot is free again
        assert await state_store.get(live) == "1"
        assert await state_store.get(permanent) == "stays"

    # ------------------------------------------------------------- concurrency (D22-D26)

    async def test_concurrent_check_and_set_has_one_winner(self, state_store: StateStore) -> None:
        """D22: 100 concurrent ``check_and_set`` on one key: exactly one ``True``."""
        key = _key(KeyKind.STATE, "race")
        wins: list[int] = []

        async def worker(i: int) -> None:
            if await state_store.check_and_set(key, f"v{i}", ttl=60):
                wins.append(i)

        await _gather(100, worker)
        assert len(wins) == 1
        assert await state_store.get(key) == f"v{wins[0]}"

    async def test_concurrent_dedup_executes_once(self, state_store: StateStore) -> None:
        """D23: 20 simulated dispatches sharing a dedup key execute once."""
        dedup = StateKey("stress", "tenant-3", KeyKind.DEDUP, "concurrent-stress-test")
        executions = StateKey("stress", "tenant-3", KeyKind.COUNTER, "executions")
        deduplicated: list[int] = []

        async def dispatch(i: int) -> None:
            await anyio.lowlevel.checkpoint()
            if await state_store.check_and_set(dedup, "1", ttl=300):
                await state_store.increment(executions, 1)
            else:
                deduplicated.append(i)

        await _gather(20, dispatch)
        assert await state_store.get(executions) == "1"
        assert len(deduplicated) == 19

    async def test_concurrent_increments_are_not_lost(self, state_store: StateStore) -> None:
        """D24: 50 workers x 20 increments = 1000; +1/-1 halves cancel out."""
        key = _key(KeyKind.COUNTER, "c")

        async def adder(i: int) -> None:
            for _ in range(20):
                await state_store.increment(key, 1)
                await anyio.lowlevel.checkpoint()

        await _gather(50, adder)
        assert await state_store.increment(key, 0) == 1000

        mixed = _key(KeyKind.COUNTER, "mixed")

        async def plus_minus(i: int) -> None:
            for _ in range(20):
                await state_store.increment(mixed, 1 if i % 2 else -1)
                await anyio.lowlevel.checkpoint()

        await _gather(50, plus_minus)
        assert await state_store.get(mixed) == "0"

    async def test_concurrent_cas_retry_loop(self, state_store: StateStore) -> None:
        """D25: 10 workers x 10 read-modify-CAS loops lose no update."""
        key = _key(KeyKind.STATE, "cas-loop")
        await state_store.set(key, json.dumps({"n": 0}))

        async def worker(i: int) -> None:
            for _ in range(10):
                while True:
                    current = await state_store.get_versioned(key)
                    assert current is not None
                    value, version = current
                    await anyio.lowlevel.checkpoint()  # let others interleave
                    n = json.loads(value)["n"]
                    if (await state_store.compare_and_swap(key, version, json.dumps({"n": n + 1}))).ok:
                        break

        await _gather(10, worker)
        final = await state_store.get_versioned(key)
        assert final is not None
        assert json.loads(final[0]) == {"n": 100}
        assert final[1] == 101

    async def test_concurrent_reindex_leaves_one_entry(self, state_store: StateStore) -> None:
        """D26: racing re-indexes leave exactly one index entry for the key."""
        key = _key(KeyKind.EVENT_TIMEOUT, "racing")
        rng = random.Random(7)
        stamps = [rng.randrange(1000, 100_000) for _ in range(20)]

        async def worker(i: int) -> None:
            await anyio.lowlevel.checkpoint()
            await state_store.index_timeout(key, stamps[i])

        await _gather(20, worker)
        due = await state_store.get_expired_timeouts(10**13)
        assert due.count(key.canonical) == 1
        assert await state_store.get_expired_timeouts(min(stamps) - 1) == []

    # ------------------------------------------------------------- fixed windows (DECISIONS D7)

    async def test_increment_window_sets_expiry_only_on_create(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        """``increment_window``: the expiry is fixed by the call that creates the counter."""
        key = _key(KeyKind.RATE_LIMIT, "window")
        scale = time_control.scale
        end = _now_ms(time_control) + int(10_000 * scale)
        assert await state_store.increment_window(key, 1, end) == 1
        assert await state_store.increment_window(key, 1, end) == 2
        await time_control.advance(5)
        # A later end passed by a later call does not move the window.
        assert await state_store.increment_window(key, 1, _now_ms(time_control) + int(10_000 * scale)) == 3
        assert await state_store.get(key) == "3"
        await time_control.advance(6)  # t=11 > 10: the first window has closed
        assert await state_store.get(key) is None
        fresh_end = _now_ms(time_control) + int(10_000 * scale)
        assert await state_store.increment_window(key, 1, fresh_end) == 1
        assert await state_store.increment_window(key, 4, fresh_end) == 5

    async def test_increment_window_rejects_non_integer_value(self, state_store: StateStore) -> None:
        key = _key(KeyKind.RATE_LIMIT, "window-bad")
        await state_store.set(key, "abc")
        with pytest.raises((StateSerializationError, StateBackendError)):
            await state_store.increment_window(key, 1, 2**50)
        assert await state_store.get(key) == "abc"

    async def test_concurrent_increment_window_is_exact(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        key = _key(KeyKind.RATE_LIMIT, "window-race")
        end = _now_ms(time_control) + 60_000

        async def worker(i: int) -> None:
            for _ in range(10):
                await state_store.increment_window(key, 1, end + i)
                await anyio.lowlevel.checkpoint()

        await _gather(30, worker)
        assert await state_store.get(key) == "300"

    # ------------------------------------------------------------- dispatch fast paths

    async def test_claim_and_check_and_set(self, state_store: StateStore) -> None:
        """Lock + ``check_and_set`` in one call; a busy lock changes nothing."""
        key = _key(KeyKind.DEDUP, "claimed")
        guard, created = await state_store.claim_and_check_and_set("dispatch:claim-1", 30, key, "1", ttl=60)
        assert guard is not None and created is True
        assert await guard.is_held()

        other = _key(KeyKind.DEDUP, "claimed-busy")
        busy, busy_created = await state_store.claim_and_check_and_set("dispatch:claim-1", 30, other, "1")
        assert busy is None and busy_created is False
        assert await state_store.get(other) is None

        again, again_created = await state_store.claim_and_check_and_set("dispatch:claim-2", 30, key, "1")
        assert again is not None and again_created is False
        assert await again.release() is True
        assert await guard.release() is True
        assert await state_store.distributed_lock().try_acquire("dispatch:claim-1", 1) is not None

    async def test_claim_and_increment_window(
        self, state_store: StateStore, time_control: TimeControl
    ) -> None:
        key = _key(KeyKind.RATE_LIMIT, "claimed-window")
        end = _now_ms(time_control) + 60_000
        guard, count = await state_store.claim_and_increment_window("dispatch:w-1", 30, key, 1, end)
        assert guard is not None and count == 1
        busy, busy_count = await state_store.claim_and_increment_window("dispatch:w-1", 30, key, 1, end)
        assert busy is None and busy_count == 0
        assert await state_store.get(key) == "1"
        await guard.release()
        guard2, count2 = await state_store.claim_and_increment_window("dispatch:w-1", 30, key, 2, end)
        assert guard2 is not None and count2 == 3
        await guard2.release()

    async def test_release_deferred_frees_the_lock(self, state_store: StateStore) -> None:
        lock = state_store.distributed_lock()
        guard = await lock.try_acquire("deferred-release", 30)
        assert guard is not None
        await guard.release_deferred()
        flush = getattr(state_store, "flush", None)
        if flush is not None:
            await flush()
        again = await lock.try_acquire("deferred-release", 30)
        assert again is not None
        await again.release()

