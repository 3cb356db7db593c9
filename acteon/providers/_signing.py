"""Standard Webhooks signatures (symmetric ``v1``, HMAC-SHA256) for senders and receivers.

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` over the
exact body bytes on the wire; the signature header holds one or more
space-separated ``v1,<base64 MAC>`` entries (several during a key rotation).
See peers.md §11 for the scheme.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping, Sequence

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,200}")

SecretInput = str | bytes
HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]


class WebhookVerificationError(ValueError):
    """A webhook request did not pass signature verification; the message says why."""


def decode_secret(secret: SecretInput) -> bytes:
    """The raw key of a ``whsec_<base64>`` secret (prefix optional; missing padding tolerated).

    ``bytes`` are taken as the raw key. An empty key is an error.
    """
    if isinstance(secret, bytes | bytearray):
        key = bytes(secret)
    elif isinstance(secret, str):
        text = secret.strip()
        if text.startswith(SECRET_PREFIX):
            text = text[len(SECRET_PREFIX) :]
        text += "=" * (-len(text) % 4)
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("signing secret is not valid base64 (expected 'whsec_<base64>')") from exc
    else:
        raise TypeError(f"signing secret must be str or bytes, not {type(secret).__name__}")
    if not key:
        raise ValueError("signing secret is empty")
    return key


def message_id(value: str) -> str:
    """A ``webhook-id`` for ``value``: the value itself when it is a plain token, else a stable hash.

    Standard Webhooks ids must not contain ``.`` (it separates the signed
    fields); action ids that are UUIDs pass through unchanged, anything else
    becomes ``msg_<32 hex digits>`` derived from it, identical on every retry.
    """
    if _SAFE_ID.fullmatch(value):
        return value
    return "msg_" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` for ``msg_id`` at ``timestamp``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key in ``keys``."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(sign(key, msg_id, timestamp, body) for key in keys),
    }


def _lower_headers(headers: HeadersInput) -> dict[str, str]:
    pairs: Iterable[tuple[str, str]]
    items = getattr(headers, "items", None)
    pairs = items() if callable(items) else headers  # type: ignore[assignment]
    lowered: dict[str, str] = {}
    for name, value in pairs:
        lowered.setdefault(str(name).lower(), str(value))
    return lowered


def verify_webhook_signature(
    secret: SecretInput | Sequence[SecretInput],
    headers: HeadersInput,
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; return quietly when valid, raise :class:`WebhookVerificationError`.

    ``secret`` is the endpoint's ``whsec_...`` secret (or several, accepted
    if any matches -- useful while rotating keys). ``headers`` is any mapping
    or list of pairs; names are matched case-insensitively. ``body`` must be
    the raw request body exactly as received. The timestamp must lie within
    ``tolerance`` seconds of ``now`` (default: the current time).
    """
    secrets: Sequence[SecretInput] = [secret] if isinstance(secret, str | bytes | bytearray) else secret
    try:
        keys = [decode_secret(item) for item in secrets]
    except (TypeError, ValueError) as exc:
        raise WebhookVerificationError(f"bad secret: {exc}") from exc
    if not keys:
        raise WebhookVerificationError("no secret given")

    found = _lower_headers(headers)
    missing = [name for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE) if not found.get(name)]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    msg_id = found[HEADER_ID]
    try:
        timestamp = int(found[HEADER_TIMESTAMP].strip())
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far in the future")

    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    expected = [sign(key, msg_id, timestamp, raw).encode("ascii") for key in keys]
    for entry in found[HEADER_SIGNATURE].split(" "):
        version, _, _value = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        candidate = entry.encode("utf-8", "replace")
        # Compare against every key without stopping early, so timing says nothing about which matched.
        matched = False
        for value in expected:
            matched |= hmac.compare_digest(candidate, value)
        if matched:
            return
    raise WebhookVerificationError("no matching signature")
