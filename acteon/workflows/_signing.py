"""HMAC signatures of approval links (workflows.md §5.1, §5.4 with DECISIONS D15).

A keyring is an ordered list of ``(kid, secret)``: the first key signs new links,
every key verifies, so rotating means putting the new key in front and keeping
the old ones until their links have expired.

The upstream gateway signs only ``(namespace, tenant, id, expiry)``, so its
approve and reject links carry the same signature and a key id in the URL can be
swapped freely. acteon appends the decision and the key id to the signed text:
an approve link cannot be turned into a reject link (or the other way round) and
a signature only verifies under the key it names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from acteon._exceptions import ConfigurationError

_log = logging.getLogger("acteon.approvals")

DECISIONS = ("approve", "reject")
"""The two decisions a link can carry; they are also the last path segment of its URL."""

DEFAULT_KID = "k0"


def _field(value: str) -> str:
    """``{utf8-byte-length}:{value}``: length-prefixing makes field boundaries unambiguous."""
    return f"{len(value.encode('utf-8'))}:{value}"


def reference_message(namespace: str, tenant: str, approval_id: str, expires_at: int) -> str:
    """The text upstream signs (workflows.md §5.4); acteon's message starts with it."""
    return f"{_field(namespace)}\n{_field(tenant)}\n{_field(approval_id)}\n{int(expires_at)}"


def signing_message(
    namespace: str, tenant: str, approval_id: str, decision: str, expires_at: int, kid: str
) -> str:
    """What acteon signs: the upstream text plus the decision and the key id (D15)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    return f"{reference_message(namespace, tenant, approval_id, expires_at)}\n{_field(decision)}\n{_field(kid)}"


@dataclass(frozen=True, slots=True)
class ApprovalKey:
    """One signing key. ``repr`` hides the secret."""

    kid: str
    secret: bytes

    def __repr__(self) -> str:
        return f"ApprovalKey(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"

    def sign(self, message: str) -> str:
        return hmac.new(self.secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


class ApprovalKeyring:
    """Ordered signing keys: ``current`` (the first) signs, all of them verify."""

    __slots__ = ("keys", "random")

    def __init__(self, keys: Iterable[ApprovalKey], *, random: bool = False) -> None:
        self.keys: tuple[ApprovalKey, ...] = tuple(keys)
        if not self.keys:
            raise ConfigurationError("approval_keys must hold at least one key")
        self.random = random

    @property
    def current(self) -> ApprovalKey:
        return self.keys[0]

    def get(self, kid: str) -> ApprovalKey | None:
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    def sign(
        self, namespace: str, tenant: str, approval_id: str, decision: str, expires_at: int
    ) -> tuple[str, str]:
        """``(signature, kid)`` made with the current key."""
        key = self.current
        return key.sign(signing_message(namespace, tenant, approval_id, decision, expires_at, key.kid)), key.kid

    def verify(
        self,
        namespace: str,
        tenant: str,
        approval_id: str,
        decision: str,
        expires_at: int,
        sig: str,
        kid: str | None = None,
    ) -> bool:
        """Check ``sig`` for this decision: only key ``kid`` when given (unknown kid fails),
        else every key in order. Constant-time and length-checked."""
        if not isinstance(sig, str) or not sig.isascii():
            return False
        candidates: Iterable[ApprovalKey]
        if kid is not None:
            key = self.get(kid)
            if key is None:
                return False
            candidates = (key,)
        else:
            candidates = self.keys
        ok = False
        for key in candidates:
            expected = key.sign(signing_message(namespace, tenant, approval_id, decision, expires_at, key.kid))
            # Check every candidate, not just until the first match: the time taken
            # then does not tell which key matched.
            if len(expected) == len(sig) and hmac.compare_digest(expected, sig.lower()):
                ok = True
        return ok


def _secret_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        secret = bytes(value)
    elif isinstance(value, str):
        try:
            secret = bytes.fromhex(value.strip())
        except ValueError:
            raise ConfigurationError(f"{where}: secret must be hex-encoded bytes") from None
    else:
        raise ConfigurationError(f"{where}: secret must be a hex string or bytes, got {type(value).__name__}")
    if not secret:
        raise ConfigurationError(f"{where}: secret must not be empty")
    return secret


def build_keyring(
    approval_keys: Iterable[Mapping[str, Any] | ApprovalKey] | None = None,
    approval_secret: str | bytes | None = None,
) -> ApprovalKeyring:
    """Keys from configuration (§5.1): ``approval_keys`` wins over ``approval_secret``.

    ``approval_keys`` entries are ``{"id": kid, "secret": hex}`` mappings (``kid`` is
    accepted for ``id``; ``secret`` may be ``bytes``). With neither, a random 32-byte
    key ``k0`` is made: links then stop verifying when the process restarts, and
    processes sharing a store cannot verify each other's links.
    """
    if approval_keys is not None:
        keys: list[ApprovalKey] = []
        seen: set[str] = set()
        for index, entry in enumerate(approval_keys):
            where = f"approval_keys[{index}]"
            if isinstance(entry, ApprovalKey):
                key = entry
            elif isinstance(entry, Mapping):
                kid = entry.get("id", entry.get("kid"))
                if not isinstance(kid, str) or not kid:
                    raise ConfigurationError(f"{where}: 'id' must be a non-empty string")
                if "secret" not in entry:
                    raise ConfigurationError(f"{where}: 'secret' is required")
                key = ApprovalKey(kid, _secret_bytes(entry["secret"], where))
            else:
                raise ConfigurationError(f"{where}: expected {{id, secret}}, got {type(entry).__name__}")
            if key.kid in seen:
                raise ConfigurationError(f"{where}: key id '{key.kid}' is used twice")
            seen.add(key.kid)
            keys.append(key)
        if not keys:
            raise ConfigurationError("approval_keys must hold at least one key")
        return ApprovalKeyring(keys)
    if approval_secret is not None:
        return ApprovalKeyring([ApprovalKey(DEFAULT_KID, _secret_bytes(approval_secret, "approval_secret"))])
    return ApprovalKeyring([ApprovalKey(DEFAULT_KID, os.urandom(32))], random=True)
