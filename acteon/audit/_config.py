"""Build the audit decorator stack from an ``[audit]`` config table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.audit._base import AuditStore
from acteon.audit.compliance import ComplianceConfig, wrap_audit_store
from acteon.audit.encrypting import InvalidKey, PayloadEncryptor
from acteon.audit.redacting import RedactConfig


def encryptor_from_config(data: Any, where: str = "[audit] encryption") -> PayloadEncryptor | None:
    """``{keys = [{id, key_hex}, ...]}`` (first key encrypts); ``enabled = false`` turns it off."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where} must be a table with keys = [{{id, key_hex}}, ...]")
    unknown = set(data) - {"enabled", "keys"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if data.get("enabled", True) is False:
        return None
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ConfigurationError(f"{where}.keys must be a non-empty list of {{id, key_hex}} tables")
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(keys):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str) or not isinstance(
            entry.get("key_hex"), str
        ):
            raise ConfigurationError(f"{where}.keys[{i}] must be a table with string id and key_hex")
        pairs.append((entry["id"], entry["key_hex"]))
    try:
        return PayloadEncryptor.with_keys(pairs)
    except InvalidKey as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def wrap_from_config(store: AuditStore, section: Mapping[str, Any]) -> AuditStore:
    """Wrap ``store`` per the ``redact``, ``encryption`` and ``compliance`` keys of ``[audit]``."""
    try:
        redact = RedactConfig.from_mapping(section["redact"]) if "redact" in section else None
        compliance = (
            ComplianceConfig.from_mapping(section["compliance"]) if "compliance" in section else None
        )
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from exc
    encryptor = encryptor_from_config(section["encryption"]) if "encryption" in section else None
    return wrap_audit_store(store, redact=redact, encryptor=encryptor, compliance=compliance)
