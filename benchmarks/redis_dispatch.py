"""Full gateway dispatches on Redis (and audit writes on SQLite), against their reference points.

    python benchmarks/redis_dispatch.py [redis://127.0.0.1:6379/15] [--n 4000] [--rounds 5]

One run measures everything and prints each target as a ratio with PASS/MISS:

1. Round trips per dispatch on the allow, deduplicate and throttle paths
   (target: at most 2), from the clients' own counters (``RedisClient.stats``:
   writes that carried a command somebody waited on; writes of deferred
   commands alone -- lock releases, write-behind audit records sent by the
   timer -- are shown apart), with the commands sent and, as a cross-check,
   the server's ``EVALSHA`` count from ``INFO commandstats`` (server-wide:
   anyone else running scripts on the server inflates it). Measured with the
   audit trail in memory, on Redis, and on Redis with ``write_behind``.
2. Sequential dispatch through a deduplicate rule, every dispatch a new dedup
   key (so each one executes), no-op inline provider, audit off:
   target >= 0.45x the rate of a raw redis-py asyncio ``PING`` loop.
3. Sequential dispatch through a throttle rule (never tripped), audit off:
   target >= 0.7x the rate of ``limits``' ``FixedWindowRateLimiter.hit()`` on
   its sync ``RedisStorage`` (which audits nothing either).
4. The deduplicate dispatch of (2) with 64 dispatches in flight: target >= 3x
   the sequential rate.

   (2)-(4) are also run with an in-memory audit trail, for information: the
   record each dispatch builds and keeps costs a few microseconds more.
5. ``SQLiteAuditStore.record()`` of N records plus the final ``flush()``:
   target >= 0.5x the rate of raw ``sqlite3`` ``executemany`` of the same rows
   into the same table (same schema, indexes and pragmas) in one transaction.

Actions are built before the clock starts (each measurement times the gateway,
not pydantic). Rounds are interleaved -- round r of every measurement runs
before round r+1 of any -- and each figure is the best round, so a burst of
noise on the shared machine hits all of them alike. Keys live under a random
prefix on the given database and are deleted afterwards (never FLUSHDB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from acteon import Action, AsyncGateway
from acteon.audit import MemoryAuditStore
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditRecord
from acteon.audit.redis import RedisAuditStore
from acteon.audit.sqlite import SQLiteAuditStore, _to_row
from acteon.providers import FunctionProvider
from acteon.state.redis import RedisStateStore

RULES = """
rules:
  - name: once
    condition: {field: action.action_type, eq: notify}
    action: {type: deduplicate, ttl_seconds: 600}
  - name: plenty
    condition: {field: action.action_type, eq: digest}
    action: {type: throttle, max_count: 1000000000, window_seconds: 3600}
"""

Results = dict[str, list[float]]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def actions(kind: str, count: int, tag: str) -> list[Action]:
    """``notify`` actions get distinct dedup keys (each executes); others are plain."""
    out = []
    for i in range(count):
        extra: dict[str, Any] = {"dedup_key": f"{tag}-{i}"} if kind == "notify" else {}
        out.append(Action(namespace="bench", tenant="t", provider="noop", action_type=kind,
                          payload={"i": i}, **extra))
    return out


class Bench:
    def __init__(self, url: str, n: int) -> None:
        self.url = url
        self.n = n
        self.prefix = "acteon-bench-" + uuid.uuid4().hex[:8]
        self.tag = 0

    def fresh(self) -> str:
        self.tag += 1
        return f"r{self.tag}"

    def gateway(self, audit: AuditStore | None) -> tuple[AsyncGateway, RedisStateStore]:
        state = RedisStateStore(self.url, prefix=self.prefix)
        noop = FunctionProvider("noop", lambda action: None, inline=True)
        gw = AsyncGateway(rules=RULES, state=state, audit=audit, providers=[noop], background=False)
        return gw, state

    # ------------------------------------------------------------ round trips

    async def evalsha_calls(self, raw: Any) -> int:
        # Scripts run commands inside the server too, so only EVALSHA (never called
        # from a script) says how many scripts the clients sent.
        info = await raw.info("commandstats")
        return int(info.get("cmdstat_evalsha", {}).get("calls", 0))

    async def round_trips(self, raw: Any, audit_kind: str, kind: str) -> dict[str, float]:
        """Per sequential dispatch: awaited writes, deferred-only writes, commands, server EVALSHAs."""
        audit: AuditStore
        if audit_kind == "memory":
            audit = MemoryAuditStore()
        else:
            audit = RedisAuditStore(self.url, prefix=self.prefix, write_behind=audit_kind == "redis-wb")
        gw, state = self.gateway(audit)
        count = 1000
        batch = actions(kind, count, self.fresh())
        async with state, audit, gw:
            for a in actions(kind, 50, self.fresh()):  # warm up (connections, scripts)
                await gw.dispatch(a)
            clients = [state.client] + ([audit.client] if isinstance(audit, RedisAuditStore) else [])

            def totals() -> tuple[int, int, int]:
                return (
                    sum(c.stats.round_trips for c in clients),
                    sum(c.stats.deferred_batches for c in clients),
                    sum(c.stats.commands for c in clients),
                )

            await state.flush()
            if isinstance(audit, RedisAuditStore):
                await audit.flush()
            before, e0 = totals(), await self.evalsha_calls(raw)
            for a in batch:
                await gw.dispatch(a)
            after = totals()
            await state.flush()  # the last deferred release
            if isinstance(audit, RedisAuditStore):
                await audit.flush()
            e1 = await self.evalsha_calls(raw)
        rt, deferred, commands = ((x - y) / count for x, y in zip(after, before, strict=True))
        return {"round_trips": rt, "deferred": deferred, "commands": commands, "evalsha": (e1 - e0) / count}

    # ------------------------------------------------------------ rates

    async def sequential(self, gw: AsyncGateway, batch: list[Action]) -> float:
        dispatch = gw.dispatch
        start = time.perf_counter()
        for a in batch:
            await dispatch(a)
        return (time.perf_counter() - start) / len(batch)

    async def concurrent(self, gw: AsyncGateway, batch: list[Action], width: int) -> float:
        dispatch = gw.dispatch
        per_task = len(batch) // width

        async def worker(part: list[Action]) -> None:
            for a in part:
                await dispatch(a)

        start = time.perf_counter()
        await asyncio.gather(*(worker(batch[w * per_task:(w + 1) * per_task]) for w in range(width)))
        return (time.perf_counter() - start) / (per_task * width)


async def timed_loop(n: int, op: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - start) / n


def audit_records(n: int) -> list[AuditRecord]:
    """N realistic records, made by running dispatches through a gateway with a memory trail."""

    async def make() -> list[AuditRecord]:
        audit = MemoryAuditStore()
        noop = FunctionProvider("noop", lambda action: {"ok": True}, inline=True)
        async with AsyncGateway(rules=RULES, audit=audit, providers=[noop], background=False) as gw:
            for a in actions("notify", n, "audit"):
                await gw.dispatch(a)
        return list(audit._records.values())

    return asyncio.run(make())


def sqlite_audit_round(records: list[AuditRecord], folder: str, r: int) -> tuple[float, float]:
    """(seconds per record through SQLiteAuditStore, seconds per row with raw executemany)."""

    async def store_run() -> float:
        store = SQLiteAuditStore(os.path.join(folder, f"store-{r}.db"))
        await store.start()
        record = store.record
        start = time.perf_counter()
        for rec in records:
            await record(rec)
        await store.flush()
        elapsed = time.perf_counter() - start
        await store.aclose()
        return elapsed / len(records)

    store_s = asyncio.run(store_run())

    # The baseline: the same table (schema and indexes of the store), the same
    # pragmas, the rows already converted, one executemany in one transaction.
    path = os.path.join(folder, f"raw-{r}.db")
    schema_source = SQLiteAuditStore(path)
    asyncio.run(schema_source.start())
    asyncio.run(schema_source.aclose())
    rows = [_to_row(rec) for rec in records]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    insert = schema_source._sql.insert
    start = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.executemany(insert, rows)
    db.execute("COMMIT")
    raw_s = (time.perf_counter() - start) / len(rows)
    db.close()
    return store_s, raw_s


async def redis_part(b: Bench, rounds: int) -> tuple[dict[str, dict[str, float]], Results]:
    import limits
    import limits.storage
    import limits.strategies
    import redis.asyncio as aredis

    raw = aredis.Redis.from_url(b.url)
    await raw.ping()

    trips: dict[str, dict[str, float]] = {}
    for audit_kind in ("memory", "redis", "redis-wb"):
        for kind, label in (("other", "allow"), ("notify", "deduplicate"), ("digest", "throttle")):
            trips[f"{label}/{audit_kind}"] = await b.round_trips(raw, audit_kind, kind)

    item = limits.parse("1000000000/hour")
    storage = limits.storage.RedisStorage(b.url, key_prefix=b.prefix)
    limiter = limits.strategies.FixedWindowRateLimiter(storage)
    limiter.hit(item, "bench")

    results: Results = {}
    n = b.n
    gateways = {"off": b.gateway(None), "memory": b.gateway(MemoryAuditStore())}
    for gw, state in gateways.values():
        await state.start()
        await gw.start()
        for a in actions("notify", 200, b.fresh()) + actions("digest", 200, b.fresh()):
            await gw.dispatch(a)
    throttle_batch = actions("digest", n, "t")

    def add(key: str, seconds: float) -> None:
        results.setdefault(key, []).append(seconds)

    for _ in range(rounds):
        gc.collect()
        add("ping", await timed_loop(n, raw.ping))
        start = time.perf_counter()
        for _ in range(n):
            limiter.hit(item, "bench")
        add("limits", (time.perf_counter() - start) / n)
        for audit_kind, (gw, _state) in gateways.items():
            add(f"dedup/{audit_kind}", await b.sequential(gw, actions("notify", n, b.fresh())))
            add(f"throttle/{audit_kind}", await b.sequential(gw, throttle_batch))
            add(f"dedup64/{audit_kind}", await b.concurrent(gw, actions("notify", n * 2, b.fresh()), 64))
    for gw, state in gateways.values():
        await state.flush()
        assert gw.metrics.executed == gw.metrics.dispatched, gw.metrics  # every dispatch really ran
        await gw.aclose()
        await state.aclose()

    keys = [k async for k in raw.scan_iter(match=f"{b.prefix}*", count=1000)]
    for i in range(0, len(keys), 500):
        await raw.delete(*keys[i:i + 500])
    storage.reset()
    await raw.aclose()
    return trips, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--n", type=int, default=4000, help="dispatches per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--audit-records", type=int, default=20000)
    args = parser.parse_args()

    b = Bench(args.url, args.n)
    trips, res = asyncio.run(redis_part(b, args.rounds))

    records = audit_records(args.audit_records)
    store_samples, raw_samples = [], []
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            s, raw = sqlite_audit_round(records, folder, r)
            store_samples.append(s)
            raw_samples.append(raw)

    best = {k: min(v) for k, v in res.items()}
    print(f"Redis dispatch benchmark against {args.url} "
          f"(best of {args.rounds} interleaved rounds x {args.n} dispatches)")
    print()
    print("1. round trips per sequential dispatch (target <= 2)")
    print("   path         audit      round trips  + deferred-only writes  commands sent  server EVALSHA")
    worst = 0.0
    for key, t in trips.items():
        label, audit_kind = key.split("/")
        worst = max(worst, t["round_trips"])
        print(f"   {label:<12} {audit_kind:<10} {t['round_trips']:11.2f} {t['deferred']:23.3f} "
              f"{t['commands']:14.2f} {t['evalsha']:15.2f}  {verdict(t['round_trips'] <= 2)}")
    print()
    def row(label: str, seconds: float, tail: str = "") -> None:
        print(f"   {label:<36} {seconds * 1e6:8.1f} us  {1 / seconds:9,.0f}/s   {tail}")

    def compared(label: str, key: str, ref: str, target: float, what: str) -> float:
        ratio = best[ref] / best[key]
        judged = key.endswith("/off")
        tail = f"{ratio:.2f}x {what}" + (f" (target >= {target:g}x) {verdict(ratio >= target)}" if judged else "")
        row(label, best[key], tail)
        return ratio

    print("2. sequential dispatch, deduplicate rule (unique keys, all executed)")
    row("redis-py asyncio PING", best["ping"])
    dedup_ratio = compared("acteon dispatch, audit off", "dedup/off", "ping", 0.45, "the PING rate")
    compared("acteon dispatch, memory audit", "dedup/memory", "ping", 0.45, "the PING rate")
    print("3. sequential dispatch, throttle rule (never tripped)")
    row("limits FixedWindow hit(), sync Redis", best["limits"])
    throttle_ratio = compared("acteon dispatch, audit off", "throttle/off", "limits", 0.7, "the limits rate")
    compared("acteon dispatch, memory audit", "throttle/memory", "limits", 0.7, "the limits rate")
    print("4. deduplicate dispatch, 64 in flight")
    conc_ratio = compared("acteon dispatch x64, audit off", "dedup64/off", "dedup/off", 3, "the sequential rate")
    compared("acteon dispatch x64, memory audit", "dedup64/memory", "dedup/memory", 3, "the sequential rate")
    s_best, r_best = min(store_samples), min(raw_samples)
    audit_ratio = r_best / s_best
    print(f"5. SQLite audit writes, {len(records)} records")
    row("raw sqlite3 executemany", r_best)
    row("SQLiteAuditStore.record + flush", s_best,
        f"{audit_ratio:.2f}x the raw rate (target >= 0.5x) {verdict(audit_ratio >= 0.5)}")
    ok = worst <= 2 and dedup_ratio >= 0.45 and throttle_ratio >= 0.7 and conc_ratio >= 3 and audit_ratio >= 0.5
    print()
    print("all targets met" if ok else "some targets missed")


if __name__ == "__main__":
    main()
