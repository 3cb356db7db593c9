"""``Caller``: who dispatched an action (fills audit ``caller_id`` / ``auth_method``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    id: str = ""
    auth_method: str = ""  # "jwt", "api_key", "anonymous" or ""

    def to_wire(self) -> dict[str, str]:
        return {"id": self.id, "auth_method": self.auth_method}
