"""AES-256-GCM encryption of audit payloads at rest (state-audit.md B9).

Stored form: ``ENC[AES256-GCM,kid:<kid>,data:<b64>,iv:<b64>,tag:<b64>]`` with a
random 12-byte IV, the 16-byte GCM tag split off the ciphertext and no associated
data, so envelopes written by upstream Acteon and by acteon read both ways.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from acteon._exceptions import ActeonError, AuditStorageError
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord
from acteon.audit._wrapper import AuditStoreWrapper

# Unlike upstream, an empty ``data`` group is accepted: an empty plaintext must
# read back as itself instead of as a literal ENC[...] string.
_ENVELOPE = re.compile(
    r"^ENC\[AES256-GCM,(?:kid:([A-Za-z0-9_-]+),)?data:([A-Za-z0-9+/=]*),"
    r"iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+)\]$"
)
_KID = re.compile(r"^[A-Za-z0-9_-]+$")


class EncryptionError(ActeonError):
    """Payload encryption or decryption failed."""


class InvalidKey(EncryptionError):
    def __init__(self, message: str) -> None:
        super().__init__(f"invalid master key: {message}")


class InvalidFormat(EncryptionError):
    def __init__(self, message: str) -> None:
        super().__init__(f"invalid encrypted value: {message}")


class DecryptionFailed(EncryptionError):
    def __init__(self) -> None:
        super().__init__("decryption failed (wrong key or corrupted data)")


def parse_master_key(text: str | bytes) -> bytes:
    """32 raw bytes from 64 hex characters or from base64 of exactly 32 bytes."""
    if isinstance(text, bytes):
        if len(text) == 32:
            return text
        text = text.decode("ascii", "replace")
    s = text.strip()
    if len(s) == 64:
        try:
            return bytes.fromhex(s)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    raise InvalidKey("must be 32 bytes encoded as 64 hex chars or base64")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidFormat(f"{what} is not valid base64: {exc}") from exc


class PayloadEncryptor:
    """A keyset: the first key encrypts, every key can decrypt.

    ``PayloadEncryptor(key)`` is one key with kid ``k0``; rotate with
    ``PayloadEncryptor.with_keys([("k2", new), ("k1", old)])`` and keep the old
    key until nothing stored carries its kid.
    """

    __slots__ = ("_keys",)

    def __init__(self, key: str | bytes) -> None:
        self._keys: list[tuple[str, AESGCM]] = [("k0", AESGCM(parse_master_key(key)))]

    @classmethod
    def with_keys(cls, keys: Iterable[tuple[str, str | bytes]]) -> PayloadEncryptor:
        entries = list(keys)
        if not entries:
            raise InvalidKey("the keyset is empty; give at least one (kid, key) pair")
        seen: set[str] = set()
        parsed: list[tuple[str, AESGCM]] = []
        for kid, key in entries:
            if not isinstance(kid, str) or not _KID.match(kid):
                # A kid outside the envelope alphabet would make envelopes that read
                # back as plain strings -- silent data loss (upstream defect E14).
                raise InvalidKey(f"key id {kid!r} must match [A-Za-z0-9_-]+")
            if kid in seen:
                raise InvalidKey(f"key id {kid!r} appears twice")
            seen.add(kid)
            try:
                parsed.append((kid, AESGCM(parse_master_key(key))))
            except InvalidKey as exc:
                raise InvalidKey(f"key {kid!r} must be 32 bytes encoded as 64 hex chars or base64") from exc
        self = cls.__new__(cls)
        self._keys = parsed
        return self

    @property
    def kids(self) -> list[str]:
        return [kid for kid, _ in self._keys]

    @staticmethod
    def is_encrypted(value: Any) -> bool:
        return isinstance(value, str) and _ENVELOPE.match(value.strip()) is not None

    def encrypt(self, plaintext: str) -> str:
        kid, aead = self._keys[0]
        iv = os.urandom(12)
        sealed = aead.encrypt(iv, plaintext.encode("utf-8"), None)
        return f"ENC[AES256-GCM,kid:{kid},data:{_b64(sealed[:-16])},iv:{_b64(iv)},tag:{_b64(sealed[-16:])}]"

    def decrypt(self, value: str) -> str:
        """The plaintext of an envelope; any other string comes back unchanged."""
        m = _ENVELOPE.match(value.strip())
        if m is None:
            return value
        kid, data, iv_text, tag_text = m.groups()
        body = _unb64(data, "data")
        iv = _unb64(iv_text, "iv")
        tag = _unb64(tag_text, "tag")
        if len(iv) != 12:
            raise InvalidFormat(f"IV must be 12 bytes, got {len(iv)}")
        if len(tag) != 16:
            raise InvalidFormat(f"tag must be 16 bytes, got {len(tag)}")
        known = dict(self._keys)
        # A known kid names the one key to use; an unknown or missing kid (legacy
        # envelopes) falls back to trying the whole keyset in order.
        candidates = [known[kid]] if kid in known else [aead for _, aead in self._keys]
        for aead in candidates:
            try:
                raw = aead.decrypt(iv, body + tag, None)
            except InvalidTag:
                continue
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidFormat("plaintext is not UTF-8") from exc
        raise DecryptionFailed()

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def decrypt_json(self, value: Any) -> Any:
        """Decrypt an envelope string back to its JSON value; anything else passes through."""
        if not self.is_encrypted(value):
            return value
        text = self.decrypt(value)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidFormat(f"decrypted payload is not JSON: {exc}") from exc


class EncryptingAuditStore(AuditStoreWrapper):
    """Stores ``action_payload`` as an ``ENC[...]`` string and decrypts it on every read."""

    def __init__(self, inner: AuditStore, encryptor: PayloadEncryptor) -> None:
        super().__init__(inner)
        if not isinstance(encryptor, PayloadEncryptor):
            raise TypeError(f"EncryptingAuditStore needs a PayloadEncryptor, got {type(encryptor).__name__}")
        self.encryptor = encryptor

    async def record(self, entry: AuditRecord) -> None:
        if entry.action_payload is not None:
            try:
                sealed = self.encryptor.encrypt_json(entry.action_payload)
            except (TypeError, ValueError) as exc:
                raise AuditStorageError(f"payload encryption failed: {exc}") from exc
            entry = dataclasses.replace(entry, action_payload=sealed)
        await self.inner.record(entry)

    def _open(self, record: AuditRecord | None) -> AuditRecord | None:
        if record is None or not self.encryptor.is_encrypted(record.action_payload):
            return record
        try:
            payload = self.encryptor.decrypt_json(record.action_payload)
        except EncryptionError as exc:
            raise AuditStorageError(f"payload decryption failed: {exc}") from exc
        return dataclasses.replace(record, action_payload=payload)

    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        return self._open(await self.inner.get_by_id(record_id))

    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        return self._open(await self.inner.get_by_action_id(action_id))

    async def query(self, query: AuditQuery) -> AuditPage:
        page = await self.inner.query(query)
        records = [r for r in (self._open(r) for r in page.records) if r is not None]
        return dataclasses.replace(page, records=records)
