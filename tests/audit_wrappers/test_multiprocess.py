"""Part D item 53: four processes append to one chain in one SQLite file."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from acteon.audit import AuditQuery, HashChainAuditStore
from acteon.audit.sqlite import SQLiteAuditStore
from tests.audit_wrappers import _mp_chain_workers

pytestmark = pytest.mark.anyio


async def test_four_processes_one_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.db")
    async with SQLiteAuditStore(path):
        pass  # create the schema once, before the race
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        start_at = time.time() + 1.5  # every child imports and opens its store first
        futures = [pool.submit(_mp_chain_workers.append, path, w, start_at, 25) for w in range(4)]
        assert [f.result(timeout=120) for f in futures] == [25] * 4
    async with SQLiteAuditStore(path) as store:
        page = await store.query(AuditQuery(namespace="ns", tenant="shared", limit=1000, sort_by_sequence_asc=True))
        assert len(page.records) == 100
        assert [r.sequence_number for r in page.records] == list(range(100))
        result = await HashChainAuditStore(store).verify_chain("ns", "shared")
        assert result.valid and result.records_checked == 100
