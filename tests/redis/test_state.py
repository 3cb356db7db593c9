"""RedisStateStore semantics (state-audit.md A3/A7, Part D items 1-20 and 22-26).

TTL tests run in real time with short TTLs: Redis expires keys by its own clock.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from acteon import StateBackendError, StateSerializationError
from acteon.state import CasResult, KeyKind, MemoryStateStore, StateKey
from acteon.state.redis import RedisStateStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def K(kind: str, id: str, ns: str = "test-ns", tenant: str = "test-tenant") -> StateKey:
    return StateKey(ns, tenant, kind, id)


# --------------------------------------------------------------------------- basics (D1-D5)


async def test_missing_key(store: RedisStateStore) -> None:
    key = K("state", "missing")
    assert await store.get(key) is None
    assert await store.get_versioned(key) is None
    assert await store.delete(key) is False


async def test_set_get_versions(store: RedisStateStore) -> None:
    key = K("state", "sv")
    await store.set(key, "hello")
    assert await store.get(key) == "hello"
    assert await store.get_versioned(key) == ("hello", 1)
    await store.set(key, "world")
    assert await store.get_versioned(key) == ("world", 2)


async def test_string_keys_are_accepted(store: RedisStateStore) -> None:
    await store.set("test-ns:test-tenant:state:plain", "x")
    assert await store.get(K("state", "plain")) == "x"


async def test_check_and_set_new_and_existing(store: RedisStateStore) -> None:
    assert await store.check_and_set(K("dedup", "cas-new"), "v1") is True
    assert await store.get(K("dedup", "cas-new")) == "v1"
    await store.set(K("dedup", "cas-existing"), "v1")
    assert await store.check_and_set(K("dedup", "cas-existing"), "v2") is False
    assert await store.get(K("dedup", "cas-existing")) == "v1"


async def test_check_and_set_entry_has_version_one(store: RedisStateStore) -> None:
    key = K("dedup", "cas-ver")
    assert await store.check_and_set(key, "a")
    assert await store.get_versioned(key) == ("a", 1)
    assert await store.compare_and_swap(key, 1, "b") == CasResult(True)
    assert await store.get_versioned(key) == ("b", 2)


async def test_delete(store: RedisStateStore) -> None:
    key = K("state", "bye")
    await store.set(key, "bye")
    assert await store.delete(key) is True
    assert await store.get(key) is None
    assert await store.delete(key) is False


async def test_delete_expired_is_false(store: RedisStateStore) -> None:
    key = K("state", "gone")
    await store.set(key, "x", ttl=0.1)
    await asyncio.sleep(0.2)
    assert await store.delete(key) is False


async def test_increment_arithmetic(store: RedisStateStore) -> None:
    key = K("counter", "counter-1")
    assert await store.increment(key, 1) == 1
    assert await store.increment(key, 5) == 6
    assert await store.increment(key, -2) == 4
    assert await store.get(key) == "4"


async def test_increment_non_integer_raises_and_keeps_value(store: RedisStateStore) -> None:
    key = K("counter", "abc")
    await store.set(key, "abc")
    with pytest.raises(StateSerializationError, match="not an integer"):
        await store.increment(key, 1)
    assert await store.get_versioned(key) == ("abc", 1)
    with pytest.raises(StateSerializationError):
        await store.increment_window(key, 1, 2**50)
    assert await store.get_versioned(key) == ("abc", 1)


async def test_increment_overflow_is_an_error(store: RedisStateStore) -> None:
    key = K("counter", "big")
    assert await store.increment(key, 2**63 - 2) == 2**63 - 2
    assert await store.increment(key, 1) == 2**63 - 1  # exact beyond 2**53
    with pytest.raises(StateSerializationError):
        await store.increment(key, 1)
    assert await store.get(key) == str(2**63 - 1)


async def test_increment_sees_value_written_by_set(store: RedisStateStore) -> None:
    key = K("counter", "from-set")
    await store.set(key, "41")
    assert await store.increment(key, 1) == 42
    assert await store.get_versioned(key) == ("42", 2)


async def test_increment_bumps_version(store: RedisStateStore) -> None:
    key = K("counter", "ver")
    await store.increment(key, 1)
    _, v1 = await store.get_versioned(key) or ("", 0)
    await store.increment(key, 1)
    _, v2 = await store.get_versioned(key) or ("", 0)
    assert v2 == v1 + 1


# --------------------------------------------------------------------------- TTLs (D6, D7, D11-D15)


async def test_increment_ttl_slides(store: RedisStateStore) -> None:
    key = K("counter", "slide")
    assert await store.increment(key, 1, ttl=0.3) == 1
    await asyncio.sleep(0.2)
    assert await store.increment(key, 1, ttl=0.3) == 2
    await asyncio.sleep(0.2)  # 0.4 s after the first hit: alive thanks to the slide
    assert await store.get(key) == "2"
    await asyncio.sleep(0.2)
    assert await store.increment(key, 1) == 1


async def test_increment_without_ttl_keeps_expiry(store: RedisStateStore) -> None:
    key = K("counter", "keep")
    await store.increment(key, 1, ttl=0.15)
    await store.increment(key, 1)
    await asyncio.sleep(0.25)
    assert await store.get(key) is None


async def test_ttl_expiry_hides_entry_everywhere(store: RedisStateStore) -> None:
    key = K("state", "short-lived")
    await store.set(key, "short-lived", ttl=0.1)
    assert await store.get(key) == "short-lived"
    await asyncio.sleep(0.2)
    assert await store.get(key) is None
    assert await store.get_versioned(key) is None
    assert await store.scan_keys("test-ns", "test-tenant", "state") == []
    assert await store.compare_and_swap(key, 1, "x") == CasResult(False, None, 0)


async def test_check_and_set_after_expiry(store: RedisStateStore) -> None:
    key = K("dedup", "exp")
    assert await store.check_and_set(key, "v1", ttl=0.15) is True
    assert await store.check_and_set(key, "v1", ttl=0.15) is False
    await asyncio.sleep(0.25)
    assert await store.check_and_set(key, "v2") is True
    assert await store.get_versioned(key) == ("v2", 1)


async def test_counter_resets_after_expiry(store: RedisStateStore) -> None:
    key = K("counter", "reset")
    await store.increment(key, 10, ttl=0.1)
    await asyncio.sleep(0.2)
    assert await store.increment(key, 1) == 1


async def test_set_without_ttl_clears_ttl(store: RedisStateStore) -> None:
    key = K("state", "perm")
    await store.set(key, "ephemeral", ttl=0.15)
    await store.set(key, "permanent")
    await asyncio.sleep(0.25)
    assert await store.get(key) == "permanent"


async def test_cas_without_ttl_keeps_expiry(store: RedisStateStore) -> None:
    key = K("state", "cas-ttl")
    await store.set(key, "x", ttl=0.15)
    assert (await store.compare_and_swap(key, 1, "y")).ok
    await asyncio.sleep(0.25)
    assert await store.get(key) is None


async def test_cas_with_ttl_sets_expiry(store: RedisStateStore, raw: Any, prefix: str) -> None:
    key = K("state", "cas-ttl2")
    await store.set(key, "x")
    assert (await store.compare_and_swap(key, 1, "y", ttl=30)).ok
    assert 0 < raw.pttl(f"{prefix}:{key}:h") <= 30_000


async def test_zero_ttl_means_already_expired(store: RedisStateStore) -> None:
    key = K("state", "zero")
    assert await store.check_and_set(key, "x", ttl=0) is True
    assert await store.get(key) is None
    await store.set(key, "y", ttl=0)
    assert await store.get(key) is None
    assert await store.increment(K("counter", "zero"), 3, ttl=0) == 3
    assert await store.get(K("counter", "zero")) is None


async def test_ttl_uses_server_expiry(store: RedisStateStore, raw: Any, prefix: str) -> None:
    key = K("dedup", "pttl")
    await store.check_and_set(key, "1", ttl=60)
    assert 59_000 < raw.pttl(f"{prefix}:{key}:h") <= 60_000


# --------------------------------------------------------------------------- increment_window (D7)


async def test_increment_window_fixed_expiry(store: RedisStateStore, raw: Any, prefix: str) -> None:
    key = K("rate_limit", "rule")
    time_ms = int(raw.time()[0]) * 1000
    end = time_ms + 60_000
    assert await store.increment_window(key, 1, end) == 1
    assert await store.increment_window(key, 2, end + 999_999) == 3  # expiry set only on create
    assert abs(raw.pexpiretime(f"{prefix}:{key}:h") - end) <= 1
    assert await store.get_versioned(key) == ("3", 2)


async def test_increment_window_real_expiry(store: RedisStateStore, raw: Any) -> None:
    key = K("rate_limit", "short")
    seconds, micros = raw.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    assert await store.increment_window(key, 1, now_ms + 150) == 1
    assert await store.increment_window(key, 1, now_ms + 150) == 2
    await asyncio.sleep(0.25)
    assert await store.increment_window(key, 1, now_ms + 10_000) == 1


async def test_increment_window_in_the_past_counts_but_does_not_persist(store: RedisStateStore) -> None:
    key = K("rate_limit", "past")
    assert await store.increment_window(key, 1, 1000) == 1
    assert await store.get(key) is None


# --------------------------------------------------------------------------- CAS (D8-D10)


async def test_cas(store: RedisStateStore) -> None:
    key = K("state", "cas")
    await store.set(key, "initial")
    assert await store.compare_and_swap(key, 999, "updated") == CasResult(False, "initial", 1)
    assert await store.compare_and_swap(key, 1, "updated") == CasResult(True)
    assert await store.get_versioned(key) == ("updated", 2)
    assert await store.compare_and_swap(key, 1, "x") == CasResult(False, "updated", 2)


async def test_cas_absent_key_conflicts_and_stays_absent(store: RedisStateStore) -> None:
    key = K("state", "never")
    assert await store.compare_and_swap(key, 0, "v") == CasResult(False, None, 0)
    assert await store.get(key) is None


# --------------------------------------------------------------------------- scans (D16, D17)


async def test_scan_keys_prefix_and_isolation(store: RedisStateStore) -> None:
    kind = "a2a_task_push_config"
    for id in ("task1:cfgA", "task1:cfgB", "task2:cfgA"):
        await store.set(K(kind, id), id)
    await store.set(K(kind, "task1:cfgA", tenant="other"), "other")
    await store.set(K("state", "task1:cfgA"), "state")
    await store.set(K(kind, "task1:expired"), "x", ttl=0.05)
    await asyncio.sleep(0.1)
    found = await store.scan_keys("test-ns", "test-tenant", kind, "task1:")
    assert sorted(found) == [
        (f"test-ns:test-tenant:{kind}:task1:cfgA", "task1:cfgA"),
        (f"test-ns:test-tenant:{kind}:task1:cfgB", "task1:cfgB"),
    ]
    assert await store.scan_keys("test-ns", "test-tenant", kind, "task1_") == []
    assert len(await store.scan_keys("test-ns", "test-tenant", kind)) == 3


async def test_scan_keys_glob_characters_are_literal(store: RedisStateStore) -> None:
    await store.set(K("state", "a*b"), "star")
    await store.set(K("state", "axb"), "x")
    await store.set(K("state", "[ab]"), "brackets")
    await store.set(K("state", "a"), "a")
    await store.set(StateKey("n?", "t*", "state", "q"), "weird")
    await store.set(StateKey("nx", "tx", "state", "q"), "plain")
    assert await store.scan_keys("test-ns", "test-tenant", "state", "a*") == [
        ("test-ns:test-tenant:state:a*b", "star")
    ]
    assert await store.scan_keys("test-ns", "test-tenant", "state", "[a") == [
        ("test-ns:test-tenant:state:[ab]", "brackets")
    ]
    assert await store.scan_keys("n?", "t*", "state") == [("n?:t*:state:q", "weird")]


async def test_scan_keys_by_kind_exact_segment_and_clean_keys(store: RedisStateStore) -> None:
    await store.set(StateKey("ns1", "t", "state", "a"), "1")
    await store.check_and_set(StateKey("ns1", "t", "state", "b"), "2")
    await store.increment(StateKey("ns2", "t", "state", "c"), 3)
    await store.set(StateKey("ns1", "t", "event_state", "d"), "x")
    await store.set(StateKey("ns1", "t", "event_state", "x:state:y"), "x")
    # A lock whose name puts "state" in the third segment is not an entry.
    lock = await store.distributed_lock().try_acquire("x:y:state:z", 10)
    assert lock is not None
    expected = {("ns1:t:state:a", "1"), ("ns1:t:state:b", "2"), ("ns2:t:state:c", "3")}
    found = await store.scan_keys_by_kind(KeyKind.STATE)
    assert sorted(found) == sorted(expected)
    assert (await store.compare_and_swap(StateKey("ns1", "t", "state", "b"), 1, "2b")).ok
    found = await store.scan_keys_by_kind("state")
    assert len(found) == 3
    assert dict(found)["ns1:t:state:b"] == "2b"


async def test_scan_ids_ending_in_h(store: RedisStateStore) -> None:
    await store.set(K("state", "foo:h"), "1")
    await store.set(K("state", "foo"), "2")
    assert sorted(await store.scan_keys("test-ns", "test-tenant", "state")) == [
        ("test-ns:test-tenant:state:foo", "2"),
        ("test-ns:test-tenant:state:foo:h", "1"),
    ]


async def test_scan_many_keys_pages(redis_url: str, prefix: str) -> None:
    async with RedisStateStore(redis_url, prefix=prefix, scan_count=50) as store:
        for i in range(300):
            await store.set(K("state", f"k{i}"), str(i))
        found = await store.scan_keys("test-ns", "test-tenant", "state")
        assert len(found) == 300
        assert len({k for k, _ in found}) == 300


# --------------------------------------------------------------------------- indexes (D18-D20, D26)


async def test_timeout_index_replace_and_boundary(store: RedisStateStore) -> None:
    key = K("event_timeout", "reindex")
    await store.index_timeout(key, 1000)
    await store.index_timeout(key, 5000)
    assert await store.get_expired_timeouts(2000) == []
    assert await store.get_expired_timeouts(4999) == []
    assert await store.get_expired_timeouts(5000) == [str(key)]
    await store.set(key, "data")
    await store.delete(key)
    assert await store.get_expired_timeouts(5000) == [str(key)]
    await store.remove_timeout_index(key)
    assert await store.get_expired_timeouts(6000) == []
    await store.remove_timeout_index(key)


async def test_chain_ready_index(store: RedisStateStore) -> None:
    key = K("pending_chains", "reindex")
    await store.index_chain_ready(key, 1000)
    await store.index_chain_ready(key, 5000)
    assert await store.get_ready_chains(4999) == []
    assert await store.get_ready_chains(5000) == [str(key)]
    await store.remove_chain_ready_index(key)
    assert await store.get_ready_chains(6000) == []
    await store.remove_chain_ready_index(key)


async def test_index_ordering_and_prefix_named_namespace(store: RedisStateStore) -> None:
    k1, k2, k3 = K("event_timeout", "k1"), K("event_timeout", "k2"), K("event_timeout", "k3")
    await store.index_timeout(k1, 3000)
    await store.index_timeout(k2, 1000)
    await store.index_timeout(k3, 2000)
    k0 = K("event_timeout", "k0")
    await store.index_timeout(k0, 2000)  # same score as k3: ordered by key
    assert await store.get_expired_timeouts(5000) == [str(k2), str(k0), str(k3), str(k1)]
    # A namespace equal to the prefix comes back intact (upstream mangled it).
    odd = StateKey(store.prefix, "t", "event_timeout", "x")
    await store.index_timeout(odd, 10)
    assert (await store.get_expired_timeouts(10)) == [str(odd)]


async def test_timeout_index_race_keeps_one_entry(store: RedisStateStore) -> None:
    key = K("event_timeout", "race")
    await asyncio.gather(*(store.index_timeout(key, random.randint(1, 10_000)) for _ in range(20)))
    assert (await store.get_expired_timeouts(10_000)).count(str(key)) == 1


# --------------------------------------------------------------------------- concurrency (D22-D25)


async def test_check_and_set_race(store: RedisStateStore) -> None:
    key = K("state", "race")
    results = await asyncio.gather(*(store.check_and_set(key, f"v{i}") for i in range(100)))
    assert results.count(True) == 1
    assert await store.get(key) is not None


async def test_dedup_accuracy(store: RedisStateStore) -> None:
    dedup = StateKey("stress", "tenant-3", "dedup", "concurrent-stress-test")
    executions = StateKey("stress", "tenant-3", "counter", "executions")

    async def dispatch() -> bool:
        if await store.check_and_set(dedup, "1", ttl=300):
            await store.increment(executions, 1)
            return True
        return False

    outcomes = await asyncio.gather(*(dispatch() for _ in range(20)))
    assert outcomes.count(True) == 1
    assert await store.get(executions) == "1"


async def test_increment_race(store: RedisStateStore) -> None:
    async def worker(key: StateKey, delta: int) -> None:
        for _ in range(20):
            await store.increment(key, delta)

    key = K("counter", "c")
    await asyncio.gather(*(worker(key, 1) for _ in range(50)))
    assert await store.get(key) == "1000"
    mixed = K("counter", "mixed")
    await asyncio.gather(*(worker(mixed, 1) for _ in range(25)), *(worker(mixed, -1) for _ in range(25)))
    assert await store.get(mixed) == "0"


async def test_cas_retry_loop(store: RedisStateStore) -> None:
    key = K("state", "cas-loop")
    await store.set(key, json.dumps({"n": 0}))

    async def worker() -> None:
        for _ in range(10):
            while True:
                current = await store.get_versioned(key)
                assert current is not None
                value, version = current
                new = json.dumps({"n": json.loads(value)["n"] + 1})
                if (await store.compare_and_swap(key, version, new)).ok:
                    break

    await asyncio.gather(*(worker() for _ in range(10)))
    value, version = await store.get_versioned(key) or ("", 0)
    assert json.loads(value) == {"n": 100}
    assert version == 101


async def test_concurrent_set_versions_are_unique(store: RedisStateStore) -> None:
    key = K("state", "sets")
    await asyncio.gather(*(store.set(key, str(i)) for i in range(50)))
    assert (await store.get_versioned(key) or ("", 0))[1] == 50


# --------------------------------------------------------------------------- legacy (Rust) data


async def test_reads_and_converts_rust_string_entries(store: RedisStateStore, raw: Any, prefix: str) -> None:
    # Entries the Rust gateway wrote with check_and_set / increment: plain strings.
    dedup, counter = K("dedup", "old"), K("counter", "old")
    raw.set(f"{prefix}:{dedup}", "1", px=60_000)
    raw.set(f"{prefix}:{counter}", "7")
    assert await store.get(dedup) == "1"
    assert await store.get_versioned(dedup) == ("1", 1)
    assert await store.check_and_set(dedup, "again") is False
    assert await store.increment(counter, 1) == 8
    assert await store.get_versioned(counter) == ("8", 2)
    assert raw.exists(f"{prefix}:{counter}") == 0
    # A reader holding version 1 cannot CAS over a newer set.
    await store.set(dedup, "new")
    assert await store.get_versioned(dedup) == ("new", 2)
    assert raw.pttl(f"{prefix}:{dedup}:h") == -1  # set without ttl: permanent
    raw.set(f"{prefix}:{K('state', 'casold')}", "a", px=60_000)
    assert await store.compare_and_swap(K("state", "casold"), 2, "b") == CasResult(False, "a", 1)
    assert await store.compare_and_swap(K("state", "casold"), 1, "b") == CasResult(True)
    assert await store.get_versioned(K("state", "casold")) == ("b", 2)
    assert 0 < raw.pttl(f"{prefix}:{K('state', 'casold')}:h") <= 60_000  # expiry carried over
    raw.set(f"{prefix}:{K('state', 'delold')}", "z")
    assert sorted(await store.scan_keys("test-ns", "test-tenant", "state")) == [
        ("test-ns:test-tenant:state:casold", "b"),
        ("test-ns:test-tenant:state:delold", "z"),
    ]
    assert await store.delete(K("state", "delold")) is True
    assert await store.get(K("state", "delold")) is None


async def test_backend_error_for_wrong_type(store: RedisStateStore, raw: Any, prefix: str) -> None:
    raw.rpush(f"{prefix}:{K('state', 'list')}:h", "x")
    with pytest.raises(StateBackendError, match="WRONGTYPE"):
        await store.get(K("state", "list"))
    # The connection is still fine afterwards.
    assert await store.get(K("state", "other")) is None


# --------------------------------------------------------------------------- differential test


async def test_random_operations_match_memory_store(store: RedisStateStore) -> None:
    memory = MemoryStateStore()
    rng = random.Random(1234)
    keys = [K(kind, f"id{i}") for kind in ("state", "counter") for i in range(4)]
    for _ in range(600):
        key = rng.choice(keys)
        op = rng.choice(["get", "getv", "set", "cas_set", "delete", "incr", "cas", "scan"])
        if op == "get":
            args: tuple[Any, ...] = ()
        elif op == "set" or op == "cas_set":
            args = (rng.choice(["a", "b", "1", "5"]),)
        elif op == "incr":
            args = (rng.randint(-3, 3),)
        elif op == "cas":
            args = (rng.randint(0, 4), rng.choice(["x", "2"]))
        else:
            args = ()
        results = []
        for s in (memory, store):
            try:
                if op == "get":
                    results.append(await s.get(key))
                elif op == "getv":
                    results.append(await s.get_versioned(key))
                elif op == "set":
                    results.append(await s.set(key, *args))
                elif op == "cas_set":
                    results.append(await s.check_and_set(key, *args))
                elif op == "delete":
                    results.append(await s.delete(key))
                elif op == "incr":
                    results.append(await s.increment(key, *args))
                elif op == "cas":
                    results.append(await s.compare_and_swap(key, *args))
                else:
                    results.append(sorted(await s.scan_keys("test-ns", "test-tenant", key.kind)))
            except StateSerializationError:
                results.append("error")
        assert results[0] == results[1], (op, key, args, results)
