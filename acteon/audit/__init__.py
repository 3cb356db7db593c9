"""Audit trail: records, queries and stores (memory, SQLite, Redis)."""

from acteon.audit._base import AuditStore
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord, Cursor, tenant_covered_by
from acteon.audit._open import open_audit_store
from acteon.audit.compliance import ComplianceAuditStore, ComplianceConfig, wrap_audit_store
from acteon.audit.encrypting import EncryptingAuditStore, PayloadEncryptor
from acteon.audit.hash_chain import HashChainAuditStore, HashChainVerification
from acteon.audit.memory import MemoryAuditStore
from acteon.audit.redacting import RedactConfig, RedactingAuditStore

__all__ = [
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditStore",
    "ComplianceAuditStore",
    "ComplianceConfig",
    "Cursor",
    "EncryptingAuditStore",
    "HashChainAuditStore",
    "HashChainVerification",
    "MemoryAuditStore",
    "PayloadEncryptor",
    "RedactConfig",
    "RedactingAuditStore",
    "RedisAuditStore",
    "SQLiteAuditStore",
    "open_audit_store",
    "tenant_covered_by",
    "wrap_audit_store",
]


def __getattr__(name: str) -> object:
    if name == "SQLiteAuditStore":
        from acteon.audit.sqlite import SQLiteAuditStore

        return SQLiteAuditStore
    if name == "RedisAuditStore":
        from acteon.audit.redis import RedisAuditStore

        return RedisAuditStore
    raise AttributeError(name)
