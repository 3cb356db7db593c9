"""Stored forms of scheduled and recurring actions.

``RecurringAction`` and ``RecurringActionTemplate`` keep the upstream JSON shape
(core-pipeline.md §12.1): every field is emitted, optional ones as ``null``,
timestamps as RFC 3339 with ``Z`` (DECISIONS D3). ``ScheduledAction`` is the
value of ``{ns}:{tenant}:scheduled_action:{id}`` (§11.1) plus a delivery
attempt counter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from acteon._action import Action
from acteon._timefmt import coerce_datetime, format_rfc3339


def _ms_ceil(value: datetime) -> int:
    """Epoch milliseconds, rounded up so an index entry is never due before its time."""
    us = int(value.timestamp() * 1_000_000 + 0.5)
    return -(-us // 1000)


class RecurringActionTemplate(BaseModel):
    """What each occurrence dispatches. ``metadata`` values and ``dedup_key`` may
    use ``{{recurring_id}}`` and ``{{execution_time}}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    provider: str
    action_type: str
    payload: Any = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    dedup_key: str | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for key, label in value.items():
                if not isinstance(label, str):
                    raise ValueError(f"metadata label {key!r} must be a string, got {type(label).__name__}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "action_type": self.action_type,
            "payload": self.payload,
            "metadata": dict(self.metadata),
            "dedup_key": self.dedup_key,
        }


class RecurringAction(BaseModel):
    """A cron-driven action definition, stored at ``{ns}:{tenant}:recurring_action:{id}``.

    ``next_execution_at`` is ``None`` when the action is paused or exhausted
    (``ends_at`` passed or ``max_executions`` reached).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    namespace: str
    tenant: str
    cron_expr: str
    timezone: str = "UTC"
    enabled: bool = True
    action_template: RecurringActionTemplate
    created_at: datetime
    updated_at: datetime
    last_executed_at: datetime | None = None
    next_execution_at: datetime | None = None
    ends_at: datetime | None = None
    max_executions: int | None = Field(None, ge=0)
    execution_count: int = Field(0, ge=0)
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("created_at", "updated_at", "last_executed_at", "next_execution_at", "ends_at",
                     mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        return None if value is None else coerce_datetime(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _none_labels(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_serializer("created_at", "updated_at", "last_executed_at", "next_execution_at", "ends_at")
    def _ser_time(self, value: datetime | None) -> str | None:
        return None if value is None else format_rfc3339(value)

    # ------------------------------------------------------------------ JSON forms

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON object (upstream field order, every field present)."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "cron_expr": self.cron_expr,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "action_template": self.action_template.to_dict(),
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
            "last_executed_at": _opt_time(self.last_executed_at),
            "next_execution_at": _opt_time(self.next_execution_at),
            "ends_at": _opt_time(self.ends_at),
            "max_executions": self.max_executions,
            "execution_count": self.execution_count,
            "description": self.description,
            "labels": dict(self.labels),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> RecurringAction:
        """Parse the stored JSON (missing optional fields take their defaults)."""
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str) -> RecurringAction:
        return cls.model_validate_json(text)

    def to_detail(self) -> dict[str, Any]:
        """The HTTP detail body (server-api.md §2.13): empty optional fields omitted."""
        tpl = self.action_template
        out: dict[str, Any] = {
            "id": self.id,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "cron_expr": self.cron_expr,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "provider": tpl.provider,
            "action_type": tpl.action_type,
            "payload": tpl.payload,
            "metadata": dict(tpl.metadata),
            "execution_count": self.execution_count,
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
        }
        optional: dict[str, Any] = {
            "dedup_key": tpl.dedup_key,
            "next_execution_at": _opt_time(self.next_execution_at),
            "last_executed_at": _opt_time(self.last_executed_at),
            "ends_at": _opt_time(self.ends_at),
            "max_executions": self.max_executions,
            "description": self.description,
            "labels": dict(self.labels) or None,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def to_summary(self) -> dict[str, Any]:
        """The HTTP list item (server-api.md §2.13)."""
        out: dict[str, Any] = {
            "id": self.id,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "cron_expr": self.cron_expr,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "provider": self.action_template.provider,
            "action_type": self.action_template.action_type,
            "next_execution_at": _opt_time(self.next_execution_at),
            "execution_count": self.execution_count,
        }
        if self.description is not None:
            out["description"] = self.description
        out["created_at"] = format_rfc3339(self.created_at)
        return out

    @property
    def status(self) -> str:
        """``"active"`` or ``"paused"``."""
        return "active" if self.enabled else "paused"


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)


@dataclass(frozen=True, slots=True)
class ScheduledAction:
    """An action waiting for its delivery time.

    ``id`` is the scheduled id (the ``action_id`` of the ``Scheduled`` outcome);
    ``attempts`` counts failed deliveries so far and ``last_error`` the latest one.
    """

    id: str
    namespace: str
    tenant: str
    action: Action
    scheduled_for: datetime
    created_at: datetime
    attempts: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON: upstream's four fields, then the delivery bookkeeping."""
        out: dict[str, Any] = {
            "action_id": self.id,
            "action": self.action.to_wire(),
            "scheduled_for": format_rfc3339(self.scheduled_for),
            "created_at": format_rfc3339(self.created_at),
            "attempts": self.attempts,
        }
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, namespace: str, tenant: str, scheduled_id: str, text: str) -> ScheduledAction:
        """Parse a stored value; ``ValueError`` naming the key's id when it is unusable."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            action = Action.model_validate(data["action"])
            return cls(
                id=str(data.get("action_id") or scheduled_id),
                namespace=namespace,
                tenant=tenant,
                action=action,
                scheduled_for=coerce_datetime(data["scheduled_for"]),
                created_at=coerce_datetime(data.get("created_at") or data["scheduled_for"]),
                attempts=int(data.get("attempts") or 0),
                last_error=data.get("last_error"),
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise ValueError(f"scheduled action {namespace}:{tenant}:{scheduled_id} is unreadable: {exc}") from exc


__all__ = ["RecurringAction", "RecurringActionTemplate", "ScheduledAction"]
