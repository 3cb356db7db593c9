"""Part D item 47: redaction of payload fields, also when encryption is on."""

from __future__ import annotations

from typing import Any

import pytest

from acteon.audit import (
    AuditStore,
    EncryptingAuditStore,
    MemoryAuditStore,
    PayloadEncryptor,
    RedactConfig,
    RedactingAuditStore,
    wrap_audit_store,
)
from tests.audit_wrappers.conftest import rec

pytestmark = pytest.mark.anyio

FIELDS = ["password", "token", "api_key", "secret", "ssn", "credentials.password"]
KEY = "42" * 32


async def stored(store: AuditStore, payload: Any, config: RedactConfig | None = None) -> Any:
    wrapped = RedactingAuditStore(store, config or RedactConfig(FIELDS))
    await wrapped.record(rec("r1", action_payload=payload))
    got = await wrapped.get_by_id("r1")
    assert got is not None
    return got.action_payload


async def test_names_match_case_insensitively(inner: AuditStore) -> None:
    assert await stored(inner, {"PASSWORD": "p", "Token": "t", "user": "u"}) == {
        "PASSWORD": "[REDACTED]", "Token": "[REDACTED]", "user": "u",
    }


async def test_list_elements_share_their_path() -> None:
    payload = {"users": [{"password": "p1"}, {"password": "p2"}]}
    assert await stored(MemoryAuditStore(), payload) == {
        "users": [{"password": "[REDACTED]"}, {"password": "[REDACTED]"}]
    }


async def test_deep_nesting_and_dot_paths() -> None:
    payload = {"level1": {"level2": {"level3": {"secret": "h", "visible": "s"}}}}
    assert await stored(MemoryAuditStore(), payload) == {
        "level1": {"level2": {"level3": {"secret": "[REDACTED]", "visible": "s"}}}
    }
    config = RedactConfig(["credentials.password"])
    got = await stored(MemoryAuditStore(), {"credentials": {"password": "x", "user": "u"}, "password": "y"}, config)
    assert got == {"credentials": {"password": "[REDACTED]", "user": "u"}, "password": "y"}


async def test_whole_container_is_replaced() -> None:
    assert await stored(MemoryAuditStore(), {"secret": {"a": [1, 2]}}) == {"secret": "[REDACTED]"}


async def test_placeholder_and_primitives() -> None:
    assert await stored(MemoryAuditStore(), {"token": "t"}, RedactConfig(FIELDS, placeholder="***")) == {"token": "***"}
    assert await stored(MemoryAuditStore(), "just a string") == "just a string"


async def test_input_record_is_not_modified() -> None:
    payload = {"password": "p"}
    await stored(MemoryAuditStore(), payload)
    assert payload == {"password": "p"}


async def test_details_and_metadata_untouched() -> None:
    store = MemoryAuditStore()
    wrapped = RedactingAuditStore(store, RedactConfig(FIELDS))
    await wrapped.record(rec("r1", action_payload={"token": "t"}, metadata={"token": "m"}, outcome_details={"token": 1}))
    got = await store.get_by_id("r1")
    assert got is not None and got.metadata == {"token": "m"} and got.outcome_details == {"token": 1}


async def test_redaction_runs_before_encryption(inner: AuditStore) -> None:
    encryptor = PayloadEncryptor(KEY)
    stack = wrap_audit_store(inner, redact=RedactConfig(FIELDS), encryptor=encryptor)
    assert isinstance(stack, RedactingAuditStore) and isinstance(stack.inner, EncryptingAuditStore)
    await stack.record(rec("r1", action_payload={"password": "hunter2", "to": "a@b"}))
    raw = await inner.get_by_id("r1")
    assert raw is not None and PayloadEncryptor.is_encrypted(raw.action_payload)
    assert encryptor.decrypt_json(raw.action_payload) == {"password": "[REDACTED]", "to": "a@b"}
    got = await stack.get_by_id("r1")
    assert got is not None and got.action_payload == {"password": "[REDACTED]", "to": "a@b"}


def test_config_validation() -> None:
    with pytest.raises(TypeError, match="list of field names"):
        RedactConfig("password")
    with pytest.raises(ValueError, match="non-empty"):
        RedactConfig([""])
    with pytest.raises(ValueError, match=r"\[audit\] redact: unknown key"):
        RedactConfig.from_mapping({"enabled": True, "feilds": ["x"]})
    cfg = RedactConfig.from_mapping({"enabled": True, "fields": ["a"], "placeholder": "#"})
    assert cfg.fields == ("a",) and cfg.placeholder == "#" and cfg.enabled
