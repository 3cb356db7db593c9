"""Part D item 55 (immutability by mode) and the config-built stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from acteon import Action, AsyncGateway, ConfigurationError, ImmutableViolation
from acteon.audit import (
    AuditQuery,
    AuditStore,
    ComplianceAuditStore,
    ComplianceConfig,
    EncryptingAuditStore,
    HashChainAuditStore,
    MemoryAuditStore,
    PayloadEncryptor,
    RedactingAuditStore,
)
from acteon.testing import FakeClock
from tests.audit_wrappers.conftest import NOW, rec, seconds

pytestmark = pytest.mark.anyio

KEY = "42" * 32


async def expired_one(inner: AuditStore) -> None:
    await inner.record(rec("old", expires_at=NOW - seconds(60)))
    await inner.record(rec("new", expires_at=NOW + seconds(3600)))


async def test_hipaa_refuses_cleanup(inner: AuditStore) -> None:
    await expired_one(inner)
    store = ComplianceAuditStore(inner, ComplianceConfig.hipaa())
    with pytest.raises(ImmutableViolation, match=r"^immutable audit violation: compliance mode 'hipaa'"):
        await store.cleanup_expired()
    assert await inner.get_by_id("old") is not None


async def test_soc2_passes_through(inner: AuditStore) -> None:
    await expired_one(inner)
    assert await ComplianceAuditStore(inner, ComplianceConfig.soc2()).cleanup_expired() == 1
    assert await inner.get_by_id("old") is None


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        (ComplianceConfig.soc2().with_immutable_audit(True), True),
        (ComplianceConfig.hipaa().with_immutable_audit(False), False),
        (ComplianceConfig.none(), False),
    ],
)
async def test_overrides(inner: AuditStore, config: ComplianceConfig, refused: bool) -> None:
    await expired_one(inner)
    store = ComplianceAuditStore(inner, config)
    if refused:
        with pytest.raises(ImmutableViolation):
            await store.cleanup_expired()
    else:
        assert await store.cleanup_expired() == 1


def test_mode_table() -> None:
    assert ComplianceConfig.none() == ComplianceConfig()
    soc2, hipaa = ComplianceConfig.soc2(), ComplianceConfig.hipaa()
    assert (soc2.sync_audit_writes, soc2.hash_chain, soc2.immutable_audit) == (True, True, False)
    assert (hipaa.sync_audit_writes, hipaa.hash_chain, hipaa.immutable_audit) == (True, True, True)
    with pytest.raises(ValueError, match="none, soc2, hipaa; got 'hippa'"):
        ComplianceConfig.for_mode("hippa")
    cfg = ComplianceConfig.from_mapping({"mode": "soc2", "hash_chain": False})
    assert cfg.mode == "soc2" and not cfg.hash_chain
    with pytest.raises(ValueError, match=r"compliance.immutable_audit must be true or false"):
        ComplianceConfig.from_mapping({"mode": "soc2", "immutable_audit": "yes"})


def gateway_config(clock: FakeClock, **audit: object) -> AsyncGateway:
    return AsyncGateway.from_config(
        {
            "audit": {"enabled": True, "ttl_seconds": 60, **audit},
            "providers": [{"name": "log", "type": "log"}],
        },
        clock=clock,
    )


async def test_config_builds_the_whole_stack() -> None:
    clock = FakeClock(NOW)
    gw = gateway_config(
        clock,
        redact={"enabled": True, "fields": ["password"], "placeholder": "***"},
        encryption={"keys": [{"id": "k2", "key_hex": KEY}]},
        compliance={"mode": "hipaa"},
    )
    stack = gw.audit
    assert isinstance(stack, ComplianceAuditStore)
    assert isinstance(stack.inner, RedactingAuditStore)
    assert isinstance(stack.inner.inner, EncryptingAuditStore)
    chain = stack.inner.inner.inner
    assert isinstance(chain, HashChainAuditStore) and isinstance(chain.inner, MemoryAuditStore)
    async with gw:
        for i in range(3):
            await gw.dispatch(Action(
                namespace="n", tenant="t", provider="log", action_type="send",
                payload={"password": "hunter2", "i": i},
            ))
        await stack.flush()
        page = await stack.query(AuditQuery(namespace="n", tenant="t", sort_by_sequence_asc=True))
        assert [r.action_payload for r in page.records] == [{"password": "***", "i": i} for i in range(3)]
        raw = await chain.inner.query(AuditQuery(namespace="n"))
        assert all(",kid:k2," in r.action_payload for r in raw.records)
        verification = await stack.verify_chain("n", "t")
        assert verification.valid and verification.records_checked == 3
        # The periodic cleanup goes through the compliance layer and is refused (D21).
        clock.advance(120)
        summary = await gw.tick()
        assert isinstance(summary.errors.get("audit_expired"), ImmutableViolation)
        assert len(chain.inner) == 3


async def test_soc2_config_keeps_cleanup() -> None:
    clock = FakeClock(NOW)
    gw = gateway_config(clock, compliance={"mode": "soc2"})
    assert isinstance(gw.audit, ComplianceAuditStore)
    async with gw:
        await gw.dispatch(Action(namespace="n", tenant="t", provider="log", action_type="send"))
        clock.advance(120)
        summary = await gw.tick()
        assert not summary.errors and summary["audit_expired"] >= 1


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({"encryption": {"keys": []}}, r"\[audit\] encryption.keys must be a non-empty list"),
        ({"encryption": {"keys": [{"id": "k.1", "key_hex": KEY}]}}, "must match"),
        ({"encryption": {"keys": [{"id": "k1", "key_hex": "abc"}]}}, "key 'k1' must be 32 bytes"),
        ({"compliance": {"mode": "hipa"}}, r"\[audit\] compliance: compliance mode must be one of"),
        ({"redact": {"fields": "password"}}, r"\[audit\] redact.fields must be a list"),
    ],
)
def test_bad_config(audit: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        gateway_config(FakeClock(NOW), **audit)


def test_plain_config_is_unwrapped(tmp_path: Path) -> None:
    gw = AsyncGateway.from_config({"audit": {"enabled": True}})
    assert isinstance(gw.audit, MemoryAuditStore)
    gw2 = AsyncGateway.from_config({"audit": {"enabled": True, "encryption": {"keys": [{"id": "a", "key_hex": KEY}]}}})
    assert isinstance(gw2.audit, EncryptingAuditStore) and gw2.audit.encryptor.kids == ["a"]
    assert PayloadEncryptor.is_encrypted(PayloadEncryptor(KEY).encrypt("x"))
