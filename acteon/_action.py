"""The ``Action``: what an application asks the gateway to do.

Input is lenient (DECISIONS D1): ``id``, ``created_at`` and ``payload`` may be
omitted, and ``metadata`` may be the flat label map or ``{"labels": {...}}``.
Output (:meth:`Action.to_wire`) is exactly the upstream wire form.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from acteon._timefmt import coerce_datetime, format_rfc3339


def _new_id() -> str:
    return str(uuid.uuid4())


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Action(BaseModel):
    """One action to dispatch.

    Required: ``namespace``, ``tenant``, ``provider``, ``action_type``.
    Everything else has a default. Instances are immutable; use
    :meth:`model_copy` (``action.model_copy(update={...})``) to derive one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=False)

    id: str = Field(default_factory=_new_id)
    namespace: str
    tenant: str
    provider: str
    action_type: str
    payload: Any = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    dedup_key: str | None = None
    status: str | None = None
    fingerprint: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    created_at: datetime = Field(default_factory=_utc_now)
    trace_context: dict[str, str] = Field(default_factory=dict)
    dispatch_at: datetime | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _flatten_labels(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            if set(value) == {"labels"} and isinstance(value["labels"], dict | type(None)):
                value = value["labels"] or {}
            for key, label in value.items():
                if not isinstance(label, str):
                    raise ValueError(
                        f"metadata label {key!r} must be a string, got {type(label).__name__}"
                    )
        return value

    @field_validator("trace_context", mode="before")
    @classmethod
    def _none_trace_context(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("created_at", "starts_at", "ends_at", "dispatch_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if value is None:
            return None
        return coerce_datetime(value)

    @field_serializer("created_at", "starts_at", "ends_at", "dispatch_at")
    def _ser_time(self, value: datetime | None) -> str | None:
        return None if value is None else format_rfc3339(value)

    # ------------------------------------------------------------------ wire form

    def to_wire(self) -> dict[str, Any]:
        """The upstream JSON object (every field present; ``dispatch_at`` only when set)."""
        wire: dict[str, Any] = {
            "id": self.id,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "provider": self.provider,
            "action_type": self.action_type,
            "payload": self.payload,
            "metadata": dict(self.metadata),
            "dedup_key": self.dedup_key,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "starts_at": None if self.starts_at is None else format_rfc3339(self.starts_at),
            "ends_at": None if self.ends_at is None else format_rfc3339(self.ends_at),
            "created_at": format_rfc3339(self.created_at),
            "trace_context": dict(self.trace_context),
        }
        if self.dispatch_at is not None:
            wire["dispatch_at"] = format_rfc3339(self.dispatch_at)
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> Action:
        """Parse the upstream (or lenient) JSON object; raises ``pydantic.ValidationError``."""
        return cls.model_validate(data)

    def with_payload(self, payload: Any) -> Action:
        """A copy with another payload (same id)."""
        return self.model_copy(update={"payload": payload})


def coerce_action(action: Any) -> Action:
    """An ``Action`` from an ``Action`` or a wire-form mapping (``SerializationError`` if invalid)."""
    if isinstance(action, Action):
        return action
    if isinstance(action, dict) or hasattr(action, "keys"):
        from pydantic import ValidationError

        try:
            return Action.model_validate(dict(action))
        except ValidationError as exc:
            from acteon._exceptions import SerializationError

            raise SerializationError(f"invalid action: {exc}") from exc
    raise TypeError(f"expected an Action or a dict, got {type(action).__name__}")
