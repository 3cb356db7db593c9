"""Part D items 48-49: payload encryption at rest and key rotation."""

from __future__ import annotations

import re

import pytest

from acteon._exceptions import AuditStorageError
from acteon.audit import AuditQuery, AuditStore, EncryptingAuditStore, PayloadEncryptor
from acteon.audit.encrypting import DecryptionFailed, InvalidFormat, InvalidKey
from tests.audit_wrappers.conftest import rec

pytestmark = pytest.mark.anyio

KEY = "42" * 32
K1 = "11" * 32
K2 = "22" * 32
ENVELOPE = re.compile(r"^ENC\[AES256-GCM,kid:k0,data:[A-Za-z0-9+/=]+,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+\]$")


async def test_round_trip_through_every_read(inner: AuditStore) -> None:
    store = EncryptingAuditStore(inner, PayloadEncryptor(KEY))
    payload = {"to": "a@example.com", "n": [1, 2.5, None], "ü": "ß"}
    await store.record(rec("r1", action_id="a1", action_payload=payload))
    raw = await inner.get_by_id("r1")
    assert raw is not None and isinstance(raw.action_payload, str) and ENVELOPE.match(raw.action_payload)
    assert (await store.get_by_id("r1")).action_payload == payload  # type: ignore[union-attr]
    assert (await store.get_by_action_id("a1")).action_payload == payload  # type: ignore[union-attr]
    page = await store.query(AuditQuery(namespace="ns"))
    assert [r.action_payload for r in page.records] == [payload]


async def test_plain_and_none_payloads_pass_through(inner: AuditStore) -> None:
    await inner.record(rec("old", action_payload={"plain": True}))
    store = EncryptingAuditStore(inner, PayloadEncryptor(KEY))
    await store.record(rec("none", action_payload=None))
    assert (await store.get_by_id("old")).action_payload == {"plain": True}  # type: ignore[union-attr]
    assert (await store.get_by_id("none")).action_payload is None  # type: ignore[union-attr]
    assert (await inner.get_by_id("none")).action_payload is None  # type: ignore[union-attr]


def test_random_iv_and_empty_plaintext() -> None:
    enc = PayloadEncryptor(KEY)
    assert enc.encrypt_json({"a": 1}) != enc.encrypt_json({"a": 1})
    assert enc.decrypt(enc.encrypt("")) == ""


def test_key_rotation() -> None:
    old = PayloadEncryptor.with_keys([("k1", K1)])
    sealed = old.encrypt_json({"v": 1})
    rotated = PayloadEncryptor.with_keys([("k2", K2), ("k1", K1)])
    assert rotated.decrypt_json(sealed) == {"v": 1}
    assert ",kid:k2," in rotated.encrypt_json({"v": 2})
    # A legacy envelope without a kid: every key is tried in order.
    legacy = re.sub(r"kid:k1,", "", sealed)
    assert PayloadEncryptor.with_keys([("k2", K2), ("k0", K1)]).decrypt_json(legacy) == {"v": 1}
    unknown = PayloadEncryptor.with_keys([("k99", "99" * 32)])
    with pytest.raises(DecryptionFailed, match=r"decryption failed \(wrong key or corrupted data\)"):
        unknown.decrypt(sealed.replace("kid:k1", "kid:k98"))
    # A known kid with the wrong key does not fall back to the others.
    wrong = PayloadEncryptor.with_keys([("k1", K2), ("k0", K1)])
    with pytest.raises(DecryptionFailed):
        wrong.decrypt(sealed)
    with pytest.raises(InvalidFormat, match="IV must be 12 bytes, got 3"):
        old.decrypt("ENC[AES256-GCM,data:AAAA,iv:AAAA,tag:AAAA]")
    assert old.decrypt("ENC[AES256-GCM,garbage]") == "ENC[AES256-GCM,garbage]"


def test_key_parsing() -> None:
    import base64

    assert PayloadEncryptor(base64.b64encode(bytes(32)).decode()).kids == ["k0"]
    with pytest.raises(InvalidKey, match="invalid master key: must be 32 bytes"):
        PayloadEncryptor("abcd")
    with pytest.raises(InvalidKey, match="empty"):
        PayloadEncryptor.with_keys([])
    with pytest.raises(InvalidKey, match=r"key\.1"):
        PayloadEncryptor.with_keys([("key.1", K1)])


async def test_failed_decryption_fails_the_read(inner: AuditStore) -> None:
    await EncryptingAuditStore(inner, PayloadEncryptor(K1)).record(rec("r1", action_payload={"x": 1}))
    other = EncryptingAuditStore(inner, PayloadEncryptor(K2))
    with pytest.raises(AuditStorageError, match="payload decryption failed: decryption failed"):
        await other.get_by_id("r1")
    with pytest.raises(AuditStorageError, match="payload decryption failed"):
        await other.query(AuditQuery())


async def test_unencodable_payload(inner: AuditStore) -> None:
    store = EncryptingAuditStore(inner, PayloadEncryptor(KEY))
    with pytest.raises(AuditStorageError, match="payload encryption failed"):
        await store.record(rec("r1", action_payload={"x": object()}))
