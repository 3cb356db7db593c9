"""``ProviderResponse``: what a provider returns on success."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ResponseStatus = Literal["success", "failure", "partial"]
_STATUSES = ("success", "failure", "partial")


@dataclass(slots=True)
class ProviderResponse:
    """``{"status": "success"|"failure"|"partial", "body": <json>, "headers": {..}}``."""

    status: ResponseStatus = "success"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def success(cls, body: Any = None) -> ProviderResponse:
        return cls("success", body, {})

    @classmethod
    def failure(cls, body: Any = None) -> ProviderResponse:
        return cls("failure", body, {})

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "headers": dict(self.headers)}

    @classmethod
    def from_wire(cls, data: Any) -> ProviderResponse:
        if not isinstance(data, dict) or "status" not in data or "body" not in data:
            raise ValueError("a provider response needs 'status' and 'body'")
        status = data["status"]
        if status not in _STATUSES:
            raise ValueError(f"unknown response status {status!r}")
        headers = data.get("headers") or {}
        return cls(status, data["body"], {str(k): str(v) for k, v in headers.items()})
