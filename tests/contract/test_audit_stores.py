"""The audit-store contract, once per bundled backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acteon.audit._base import AuditStore
from acteon.testing._contracts import AuditStoreContract, TimeControl
from tests.contract.conftest import REDIS_PARAM, make_audit_store


@pytest.fixture(params=["memory", "sqlite", REDIS_PARAM])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def audit_store(backend: str, tmp_path: Path, time_control: TimeControl) -> AsyncIterator[AuditStore]:
    async with make_audit_store(backend, tmp_path, time_control) as store:
        yield store


class TestBundledAuditStores(AuditStoreContract):
    """The shared audit contract, once per bundled backend."""
