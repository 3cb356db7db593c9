"""Redaction of sensitive payload fields before an audit record is stored (state-audit.md B7)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from acteon.audit._base import AuditStore
from acteon.audit._model import AuditRecord
from acteon.audit._wrapper import AuditStoreWrapper

DEFAULT_PLACEHOLDER = "[REDACTED]"


@dataclass(frozen=True, slots=True, init=False)
class RedactConfig:
    """Which payload fields to hide and what to put in their place.

    ``fields`` are matched case-insensitively against a key's own name or its
    dot path from the payload root (``credentials.password``); list elements
    share their list's path (no index segment).
    """

    fields: tuple[str, ...] = ()
    placeholder: str = DEFAULT_PLACEHOLDER
    enabled: bool = True
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __init__(
        self, fields: Iterable[str] = (), placeholder: str = DEFAULT_PLACEHOLDER, enabled: bool = True
    ) -> None:
        if isinstance(fields, str):
            raise TypeError("RedactConfig fields must be a list of field names, not one string")
        names = tuple(fields)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"RedactConfig fields must be non-empty strings, got {name!r}")
        if not isinstance(placeholder, str):
            raise TypeError(f"RedactConfig placeholder must be a string, got {placeholder!r}")
        object.__setattr__(self, "fields", names)
        object.__setattr__(self, "placeholder", placeholder)
        object.__setattr__(self, "enabled", bool(enabled))
        object.__setattr__(self, "_names", frozenset(n.strip().lower() for n in names))

    @classmethod
    def from_mapping(cls, data: Any, where: str = "[audit] redact") -> RedactConfig:
        """Build from a config table ``{enabled, fields, placeholder}``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a table with enabled/fields/placeholder, got {data!r}")
        unknown = set(data) - {"enabled", "fields", "placeholder"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        fields_ = data.get("fields", [])
        if not isinstance(fields_, list):
            raise ValueError(f"{where}.fields must be a list of strings, got {fields_!r}")
        enabled = data.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ValueError(f"{where}.enabled must be true or false, got {enabled!r}")
        try:
            return cls(fields_, data.get("placeholder", DEFAULT_PLACEHOLDER), enabled)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def redact(self, payload: Any) -> Any:
        """A redacted copy of ``payload`` (the input is never modified)."""
        if not self._names:
            return payload
        return self._walk(payload, "")

    def _walk(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                name = str(key).lower()
                full = f"{path}.{name}" if path else name
                if name in self._names or full in self._names:
                    # The whole value goes, even an object or list: a nested secret
                    # should not survive because it was wrapped in a container.
                    out[key] = self.placeholder
                else:
                    out[key] = self._walk(item, full)
            return out
        if isinstance(value, list):
            return [self._walk(item, path) for item in value]
        return value


class RedactingAuditStore(AuditStoreWrapper):
    """Replaces configured fields of ``action_payload`` before the record goes on.

    Only the payload is touched (details and metadata are the gateway's own);
    reads pass through.
    """

    def __init__(self, inner: AuditStore, config: RedactConfig) -> None:
        super().__init__(inner)
        if not isinstance(config, RedactConfig):
            raise TypeError(f"RedactingAuditStore needs a RedactConfig, got {type(config).__name__}")
        self.config = config

    async def record(self, entry: AuditRecord) -> None:
        if self.config.enabled and entry.action_payload is not None:
            entry = dataclasses.replace(entry, action_payload=self.config.redact(entry.action_payload))
        await self.inner.record(entry)
