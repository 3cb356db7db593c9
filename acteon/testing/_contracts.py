"""Conformance suites for state stores, distributed locks and audit stores.

Every bundled backend (memory, SQLite, Redis) passes these classes, and a
third-party backend can run them too. A contract is a plain class whose name
does not start with ``Test``, so pytest does not collect it on its own.
Subclass it in a test module named ``test_*.py`` and provide the fixtures its
tests ask for::

    import pytest
    from acteon.testing._contracts import FakeTimeControl, StateStoreContract
    from acteon.testing import FakeClock

    @pytest.fixture
    def time_control() -> FakeTimeControl:
        return FakeTimeControl(FakeClock())

    @pytest.fixture
    async def state_store(time_control):
        async with MyStateStore(clock=time_control.clock) as store:
            yield store

    class TestMyStateStore(StateStoreContract):
        pass

Fixtures
--------
``state_store``
    A started, empty :class:`~acteon.state.StateStore` (used by
    :class:`StateStoreContract`).
``lock``
    A :class:`~acteon.state.DistributedLock` with no lock held, normally
    ``state_store.distributed_lock()`` (used by :class:`DistributedLockContract`).
``audit_store``
    A started, empty :class:`~acteon.audit.AuditStore` (used by :class:`AuditStoreContract`).
``time_control``
    A :class:`TimeControl`: how the tests move time. For a backend whose TTLs
    follow the injected clock, build the store on a ``FakeClock`` and pass
    :class:`FakeTimeControl`. For a backend whose TTLs run on a server's clock
    (Redis), pass :class:`RealTimeControl`. The tests then scale every TTL down
    (1 s becomes 0.15 s by default) and really sleep.

The classes carry ``@pytest.mark.anyio``, and pytest passes a base class's
marks on to subclasses, so the test functions run on the event loop that the
``anyio_backend`` fixture chooses.

Part D of ``state-audit.md`` lists the behaviours checked here. The numbers in
the docstrings (``D1`` ... ``D46``) refer to it.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.lowlevel
import pytest

from acteon._clock import SYSTEM_CLOCK, Clock
from acteon._exceptions import (
    AuditError,
    AuditStorageError,
    LockExpired,
    StateBackendError,
    StateSerializationError,
    StateTimeout,
)
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditQuery, AuditRecord, Cursor
from acteon.state._base import CasResult, DistributedLock, StateStore
from acteon.state._keys import KeyKind, StateKey
from acteon.testing._clock import FakeClock

__all__ = [
    "AuditStoreContract",
    "DistributedLockContract",
    "FakeTimeControl",
    "RealTimeControl",
    "StateStoreContract",
    "TimeControl",
]

NS = "test-ns"
TENANT = "test-tenant"


# --------------------------------------------------------------------------- time


@runtime_checkable
class TimeControl(Protocol):
    """How a contract test moves time for the backend under test.

    The contract states every duration in *nominal* seconds.
    ``scale`` turns a nominal duration into the seconds passed to the backend.
    :meth:`advance` moves time by a nominal duration.
    """

    scale: float
    """Backend seconds per nominal second (1.0 with a fake clock)."""

    real_time: bool
    """True when expiry runs on a clock the test cannot move (then sweeping is the backend's business)."""

    slack: float
    """Extra real seconds allowed in upper bounds on elapsed time (0 with a fake clock)."""

    def time(self) -> float:
        """The backend's current time in epoch seconds."""
        ...

    def now(self) -> datetime:
        """The backend's current time as an aware UTC datetime."""
        ...

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` nominal seconds pass."""
        ...


class FakeTimeControl:
    """For backends that read their time from an injected :class:`~acteon.testing.FakeClock`."""

    scale = 1.0
    real_time = False
    slack = 0.0

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock if clock is not None else FakeClock()

    def time(self) -> float:
        return self.clock.time()

    def now(self) -> datetime:
        return self.clock.now()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


class RealTimeControl:
    """For backends whose TTLs run on real (server) time: durations shrink by ``scale``, then sleep."""

    real_time = True

    def __init__(self, scale: float = 0.15, *, clock: Clock = SYSTEM_CLOCK, slack: float = 0.15) -> None:
        self.scale = scale
        self.clock = clock
        self.slack = slack

    def time(self) -> float:
        return self.clock.time()

    def now(self) -> datetime:
        return self.clock.now()

    async def advance(self, seconds: float) -> None:
        await anyio.sleep(seconds * self.scale)


def _key(kind: str, id: str, ns: str = NS, tenant: str = TENANT) -> StateKey:
    return StateKey(ns, tenant, kind, id)


def _now_ms(tc: TimeControl) -> int:
    return int(tc.time() * 1000)


async def _gather(count: int, worker: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Run ``worker(0..count-1)`` as concurrent tasks and wait for all of them."""
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(worker, i)


# --------------------------------------------------------------------------- state


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


# --------------------------------------------------------------------------- locks


@pytest.mark.anyio
class DistributedLockContract:
    """Behaviour every :class:`~acteon.state.DistributedLock` must show (Part D 27-34).

    Needs the fixtures ``lock`` (no lock held) and ``time_control``.
    """

    async def test_acquire_and_release(self, lock: DistributedLock) -> None:
        """D27: acquire, release (``True``), acquire again."""
        guard = await lock.try_acquire("test-lock-1", 10)
        assert guard is not None
        assert await guard.is_held()
        assert await guard.release() is True
        assert await guard.is_held() is False
        again = await lock.try_acquire("test-lock-1", 10)
        assert again is not None
        assert await again.release() is True

    async def test_contention(self, lock: DistributedLock) -> None:
        """D28: a held lock cannot be taken until released."""
        held = await lock.try_acquire("test-lock-2", 10)
        assert held is not None
        assert await lock.try_acquire("test-lock-2", 10) is None
        assert await lock.try_acquire("test-lock-2-other", 10) is not None
        await held.release()
        assert await lock.try_acquire("test-lock-2", 10) is not None

    async def test_extend_keeps_lock(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D29: ``extend`` sets the expiry to now + duration."""
        scale = time_control.scale
        guard = await lock.try_acquire("test-lock-3", 5 * scale)
        assert guard is not None
        await guard.extend(10 * scale)
        await time_control.advance(7)
        assert await guard.is_held()
        assert await lock.try_acquire("test-lock-3", 5 * scale) is None
        await guard.release()

    async def test_is_held(self, lock: DistributedLock) -> None:
        guard = await lock.try_acquire("test-lock-4", 10)
        assert guard is not None
        assert await guard.is_held() is True
        await guard.release()
        assert await guard.is_held() is False

    async def test_expiry_and_owner_fencing(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D30: an expired holder can neither release nor extend the next holder's lock."""
        scale = time_control.scale
        a = await lock.try_acquire("expire-lock", 2 * scale)
        assert a is not None
        await time_control.advance(3)
        assert await a.is_held() is False
        b = await lock.try_acquire("expire-lock", 10 * scale)
        assert b is not None
        assert await a.release() is False
        assert await b.is_held() is True
        with pytest.raises(LockExpired):
            await a.extend(5 * scale)
        assert await b.is_held() is True
        await b.release()

    async def test_release_twice(self, lock: DistributedLock) -> None:
        guard = await lock.try_acquire("released-twice", 10)
        assert guard is not None
        assert await guard.release() is True
        assert await guard.release() is False
        with pytest.raises(LockExpired):
            await guard.extend(10)

    async def test_async_with_releases(self, lock: DistributedLock) -> None:
        guard = await lock.acquire("context-lock", 10, 1)
        async with guard:
            assert await lock.try_acquire("context-lock", 10) is None
        assert await lock.try_acquire("context-lock", 10) is not None

    async def test_acquire_times_out(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D31: ``acquire`` raises ``StateTimeout`` after the timeout, not much later."""
        scale = time_control.scale
        holder = await lock.try_acquire("timeout-lock", 60 * scale)
        assert holder is not None
        start = time_control.time()
        with pytest.raises(StateTimeout):
            await lock.acquire("timeout-lock", 5 * scale, 1 * scale)
        elapsed = time_control.time() - start
        assert elapsed >= 1 * scale - 1e-6
        assert elapsed < 1.2 * scale + time_control.slack
        await holder.release()

    async def test_acquire_with_zero_timeout_tries_once(self, lock: DistributedLock) -> None:
        guard = await lock.acquire("zero-timeout", 10, 0)
        assert await guard.is_held()
        with pytest.raises(StateTimeout):
            await lock.acquire("zero-timeout", 10, 0)
        await guard.release()

    async def test_acquire_waits_for_expiry(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D32: ``acquire`` succeeds once the previous lease lapses."""
        scale = time_control.scale
        first = await lock.try_acquire("wait-lock", 1 * scale)
        assert first is not None
        start = time_control.time()
        second = await lock.acquire("wait-lock", 5 * scale, 10 * scale)
        assert time_control.time() - start >= 1 * scale - 0.05 * scale
        assert await second.is_held()
        assert await first.is_held() is False
        await second.release()

    async def test_mutual_exclusion(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D33: 10 contending workers all get the lock, never two at a time."""
        scale = time_control.scale
        inside = 0
        max_inside = 0
        done: list[int] = []

        async def worker(i: int) -> None:
            nonlocal inside, max_inside
            guard = await lock.acquire("contention-lock", 30 * scale, 60 * scale)
            try:
                inside += 1
                max_inside = max(max_inside, inside)
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                inside -= 1
            finally:
                assert await guard.release() is True
            done.append(i)

        await _gather(10, worker)
        assert sorted(done) == list(range(10))
        assert max_inside == 1

    async def test_sweep_expired_locks(self, lock: DistributedLock, time_control: TimeControl) -> None:
        """D34: the sweeper removes expired locks only.

        On a ``real_time`` backend the server frees an expired lock by itself, so
        ``sweep_expired`` reports 0 there; either way the leaked lock can be taken
        again and the live one is still held.
        """
        scale = time_control.scale
        leaked = await lock.try_acquire("leaked-lock", 2 * scale)
        assert leaked is not None
        live = await lock.try_acquire("live-lock", 600 * scale)
        assert live is not None
        assert await lock.sweep_expired() == 0
        await time_control.advance(3)
        if time_control.real_time:
            assert await lock.sweep_expired() == 0
        else:
            assert await lock.sweep_expired() == 1
            assert await lock.sweep_expired() == 0
        assert not await leaked.is_held()
        again = await lock.try_acquire("leaked-lock", 60 * scale)
        assert again is not None
        assert await live.is_held()
        assert await again.release()
        assert await live.release()


# --------------------------------------------------------------------------- audit

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

