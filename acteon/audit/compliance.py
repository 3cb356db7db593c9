"""Compliance modes: which audit guarantees are on (state-audit.md B7/B8, DECISIONS D21)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Literal

from acteon._exceptions import ImmutableViolation
from acteon.audit._base import AuditStore
from acteon.audit._wrapper import AuditStoreWrapper
from acteon.audit.encrypting import EncryptingAuditStore, PayloadEncryptor
from acteon.audit.hash_chain import HashChainAuditStore
from acteon.audit.redacting import RedactConfig, RedactingAuditStore

log = logging.getLogger("acteon.audit")

ComplianceMode = Literal["none", "soc2", "hipaa"]
_MODES = ("none", "soc2", "hipaa")


@dataclass(frozen=True, slots=True)
class ComplianceConfig:
    """``mode`` sets the defaults; each flag can then be overridden.

    ========  ==================  ==========  ===============
    mode      sync_audit_writes   hash_chain  immutable_audit
    ========  ==================  ==========  ===============
    none      false               false       false
    soc2      true                true        false
    hipaa     true                true        true
    ========  ==================  ==========  ===============
    """

    mode: ComplianceMode = "none"
    sync_audit_writes: bool = False
    hash_chain: bool = False
    immutable_audit: bool = False

    @classmethod
    def for_mode(cls, mode: str) -> ComplianceConfig:
        if mode not in _MODES:
            # Upstream silently falls back to "none"; a typo here would switch off
            # guarantees someone asked for, so it is an error instead.
            raise ValueError(f"compliance mode must be one of none, soc2, hipaa; got {mode!r}")
        on = mode != "none"
        return cls(mode, sync_audit_writes=on, hash_chain=on, immutable_audit=mode == "hipaa")  # type: ignore[arg-type]

    @classmethod
    def none(cls) -> ComplianceConfig:
        return cls.for_mode("none")

    @classmethod
    def soc2(cls) -> ComplianceConfig:
        return cls.for_mode("soc2")

    @classmethod
    def hipaa(cls) -> ComplianceConfig:
        return cls.for_mode("hipaa")

    def with_sync_audit_writes(self, value: bool) -> ComplianceConfig:
        return dataclasses.replace(self, sync_audit_writes=bool(value))

    def with_hash_chain(self, value: bool) -> ComplianceConfig:
        return dataclasses.replace(self, hash_chain=bool(value))

    def with_immutable_audit(self, value: bool) -> ComplianceConfig:
        return dataclasses.replace(self, immutable_audit=bool(value))

    @classmethod
    def from_mapping(cls, data: Any, where: str = "[audit] compliance") -> ComplianceConfig:
        """Build from ``{mode, hash_chain, immutable_audit, sync_audit_writes}``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a table with mode/hash_chain/immutable_audit, got {data!r}")
        unknown = set(data) - {"mode", "hash_chain", "immutable_audit", "sync_audit_writes"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            config = cls.for_mode(str(data.get("mode", "none")))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        for flag in ("sync_audit_writes", "hash_chain", "immutable_audit"):
            if flag in data:
                value = data[flag]
                if not isinstance(value, bool):
                    raise ValueError(f"{where}.{flag} must be true or false, got {value!r}")
                config = dataclasses.replace(config, **{flag: value})  # type: ignore[arg-type]
        return config


class ComplianceAuditStore(AuditStoreWrapper):
    """The outermost layer: refuses deletions when ``immutable_audit`` is on.

    Every deletion path (the gateway's periodic cleanup included) goes through
    this layer, and a refusal raises :class:`~acteon.ImmutableViolation` rather
    than quietly reporting nothing deleted (D21).
    """

    def __init__(self, inner: AuditStore, config: ComplianceConfig) -> None:
        super().__init__(inner)
        if not isinstance(config, ComplianceConfig):
            raise TypeError(f"ComplianceAuditStore needs a ComplianceConfig, got {type(config).__name__}")
        self.config = config

    async def cleanup_expired(self) -> int:
        if self.config.immutable_audit:
            log.warning("audit cleanup refused: compliance mode %s keeps audit records immutable", self.config.mode)
            raise ImmutableViolation(
                f"compliance mode '{self.config.mode}' keeps audit records immutable; cleanup refused"
            )
        return await self.inner.cleanup_expired()


def wrap_audit_store(
    inner: AuditStore,
    *,
    redact: RedactConfig | None = None,
    encryptor: PayloadEncryptor | None = None,
    compliance: ComplianceConfig | None = None,
) -> AuditStore:
    """Stack the decorators in acteon's order: ``Compliance(Redacting(Encrypting(HashChain(inner))))``.

    Redaction runs before encryption (so secrets never reach the ciphertext) and
    the hash chain sits on the storage itself (so it hashes exactly what is
    stored). Layers whose settings are off are left out.
    """
    store = inner
    if compliance is not None and compliance.hash_chain:
        store = HashChainAuditStore(store)
    if encryptor is not None:
        store = EncryptingAuditStore(store, encryptor)
    if redact is not None and redact.enabled and redact.fields:
        store = RedactingAuditStore(store, redact)
    if compliance is not None and (compliance.mode != "none" or compliance.immutable_audit):
        store = ComplianceAuditStore(store, compliance)
    return store
