"""Typed dispatch outcomes and their upstream wire form.

Every outcome has ``.kind`` (the lower-snake tag used in audit and events),
``.to_wire()`` (serde's externally tagged JSON: a bare string for unit
variants, ``{"Tag": {...}}`` otherwise) and ``Outcome.from_wire(obj)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from acteon._exceptions import ActeonError, SerializationError
from acteon._response import ProviderResponse
from acteon._timefmt import coerce_datetime, duration_from_wire, duration_to_wire, format_rfc3339

__all__ = [
    "ChainStarted",
    "CircuitOpen",
    "Deduplicated",
    "DryRun",
    "Executed",
    "Failed",
    "Grouped",
    "Outcome",
    "OutcomeFailure",
    "PendingApproval",
    "QuotaExceeded",
    "RecurringCreated",
    "Rerouted",
    "Scheduled",
    "StateChanged",
    "Suppressed",
    "Throttled",
]


class OutcomeFailure(ActeonError):
    """Raised by :meth:`Outcome.raise_for_failure` for ``Failed`` and ``CircuitOpen``."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        self.outcome = outcome
        super().__init__(message)


class Outcome:
    """Base of every dispatch outcome."""

    __slots__ = ()
    kind: ClassVar[str] = ""
    tag: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Outcome]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.tag:
            Outcome._registry[cls.tag] = cls

    # subclasses override
    def _fields_to_wire(self) -> dict[str, Any] | None:
        return {}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Outcome:
        raise NotImplementedError  # pragma: no cover - every registered subclass overrides

    def to_wire(self) -> Any:
        inner = self._fields_to_wire()
        return self.tag if inner is None else {self.tag: inner}

    def details(self) -> dict[str, Any]:
        """The audit ``outcome_details`` object (core-pipeline.md §5.6)."""
        inner = self._fields_to_wire()
        return {} if inner is None else dict(inner)

    @staticmethod
    def from_wire(obj: Any) -> Outcome:
        """Parse the externally tagged form into the matching outcome class."""
        if isinstance(obj, str):
            cls = Outcome._registry.get(obj)
            if cls is None:
                raise SerializationError(f"unknown outcome variant `{obj}`")
            return cls._fields_from_wire(None)
        if isinstance(obj, dict) and len(obj) == 1:
            (tag, inner), = obj.items()
            cls = Outcome._registry.get(tag)
            if cls is None:
                raise SerializationError(f"unknown outcome variant `{tag}`")
            try:
                return cls._fields_from_wire(inner)
            except (KeyError, TypeError, ValueError) as exc:
                raise SerializationError(f"invalid {tag} outcome: {exc}") from exc
        raise SerializationError("an outcome is a variant name or a one-key object")

    @property
    def is_failure(self) -> bool:
        return False

    def raise_for_failure(self) -> None:
        """Raise :class:`OutcomeFailure` for ``Failed`` and ``CircuitOpen``; no-op otherwise."""


def _dt(value: Any) -> datetime:
    return coerce_datetime(value)


def _opt_dt(value: Any) -> datetime | None:
    return None if value is None else coerce_datetime(value)


@dataclass(slots=True, eq=True)
class Executed(Outcome):
    kind: ClassVar[str] = "executed"
    tag: ClassVar[str] = "Executed"
    response: ProviderResponse = field(default_factory=ProviderResponse)

    def _fields_to_wire(self) -> dict[str, Any]:
        return self.response.to_wire()

    def details(self) -> dict[str, Any]:
        return {"status": self.response.status.capitalize()}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Executed:
        return cls(ProviderResponse.from_wire(inner))


@dataclass(slots=True, eq=True)
class Deduplicated(Outcome):
    kind: ClassVar[str] = "deduplicated"
    tag: ClassVar[str] = "Deduplicated"

    def _fields_to_wire(self) -> None:
        return None

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Deduplicated:
        return cls()


@dataclass(slots=True, eq=True)
class Suppressed(Outcome):
    kind: ClassVar[str] = "suppressed"
    tag: ClassVar[str] = "Suppressed"
    rule: str = ""

    def _fields_to_wire(self) -> dict[str, Any]:
        return {"rule": self.rule}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Suppressed:
        return cls(str(inner["rule"]))


@dataclass(slots=True, eq=True)
class Rerouted(Outcome):
    kind: ClassVar[str] = "rerouted"
    tag: ClassVar[str] = "Rerouted"
    original_provider: str = ""
    new_provider: str = ""
    response: ProviderResponse = field(default_factory=ProviderResponse)

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "original_provider": self.original_provider,
            "new_provider": self.new_provider,
            "response": self.response.to_wire(),
        }

    def details(self) -> dict[str, Any]:
        return {"original_provider": self.original_provider, "new_provider": self.new_provider}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Rerouted:
        return cls(
            str(inner["original_provider"]),
            str(inner["new_provider"]),
            ProviderResponse.from_wire(inner["response"]),
        )


@dataclass(slots=True, eq=True)
class Throttled(Outcome):
    kind: ClassVar[str] = "throttled"
    tag: ClassVar[str] = "Throttled"
    retry_after: timedelta = timedelta(0)

    def _fields_to_wire(self) -> dict[str, Any]:
        return {"retry_after": duration_to_wire(self.retry_after)}

    def details(self) -> dict[str, Any]:
        return {"retry_after_secs": int(self.retry_after.total_seconds())}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Throttled:
        return cls(duration_from_wire(inner["retry_after"]))


@dataclass(slots=True, eq=True)
class Failed(Outcome):
    kind: ClassVar[str] = "failed"
    tag: ClassVar[str] = "Failed"
    code: str = ""
    message: str = ""
    retryable: bool = False
    attempts: int = 0
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "attempts": self.attempts,
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Failed:
        return cls(str(inner["code"]), str(inner["message"]), bool(inner["retryable"]), int(inner["attempts"]))

    @property
    def is_failure(self) -> bool:
        return True

    def raise_for_failure(self) -> None:
        raise OutcomeFailure(self, f"{self.code}: {self.message}")


@dataclass(slots=True, eq=True)
class Grouped(Outcome):
    kind: ClassVar[str] = "grouped"
    tag: ClassVar[str] = "Grouped"
    group_id: str = ""
    group_size: int = 0
    notify_at: datetime | None = None

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "group_size": self.group_size,
            "notify_at": None if self.notify_at is None else format_rfc3339(self.notify_at),
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Grouped:
        return cls(str(inner["group_id"]), int(inner["group_size"]), _opt_dt(inner["notify_at"]))


@dataclass(slots=True, eq=True)
class StateChanged(Outcome):
    kind: ClassVar[str] = "state_changed"
    tag: ClassVar[str] = "StateChanged"
    fingerprint: str = ""
    previous_state: str = ""
    new_state: str = ""
    notify: bool = False

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "previous_state": self.previous_state,
            "new_state": self.new_state,
            "notify": self.notify,
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> StateChanged:
        return cls(str(inner["fingerprint"]), str(inner["previous_state"]), str(inner["new_state"]),
                   bool(inner["notify"]))


@dataclass(slots=True, eq=True)
class PendingApproval(Outcome):
    kind: ClassVar[str] = "pending_approval"
    tag: ClassVar[str] = "PendingApproval"
    approval_id: str = ""
    expires_at: datetime | None = None
    approve_url: str = ""
    reject_url: str = ""
    notification_sent: bool = False

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "expires_at": None if self.expires_at is None else format_rfc3339(self.expires_at),
            "approve_url": self.approve_url,
            "reject_url": self.reject_url,
            "notification_sent": self.notification_sent,
        }

    def details(self) -> dict[str, Any]:
        wire = self._fields_to_wire()
        return {k: wire[k] for k in ("approval_id", "expires_at", "notification_sent")}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> PendingApproval:
        return cls(str(inner["approval_id"]), _opt_dt(inner["expires_at"]), str(inner["approve_url"]),
                   str(inner["reject_url"]), bool(inner["notification_sent"]))


@dataclass(slots=True, eq=True)
class ChainStarted(Outcome):
    kind: ClassVar[str] = "chain_started"
    tag: ClassVar[str] = "ChainStarted"
    chain_id: str = ""
    chain_name: str = ""
    total_steps: int = 0
    first_step: str = ""

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "chain_name": self.chain_name,
            "total_steps": self.total_steps,
            "first_step": self.first_step,
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> ChainStarted:
        return cls(str(inner["chain_id"]), str(inner["chain_name"]), int(inner["total_steps"]),
                   str(inner["first_step"]))


@dataclass(slots=True, eq=True)
class DryRun(Outcome):
    kind: ClassVar[str] = "dry_run"
    tag: ClassVar[str] = "DryRun"
    verdict: str = "allow"
    matched_rule: str | None = None
    would_be_provider: str = ""

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "matched_rule": self.matched_rule,
            "would_be_provider": self.would_be_provider,
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> DryRun:
        rule = inner.get("matched_rule")
        return cls(str(inner["verdict"]), None if rule is None else str(rule), str(inner["would_be_provider"]))


@dataclass(slots=True, eq=True)
class CircuitOpen(Outcome):
    kind: ClassVar[str] = "circuit_open"
    tag: ClassVar[str] = "CircuitOpen"
    provider: str = ""
    fallback_chain: list[str] = field(default_factory=list)

    def _fields_to_wire(self) -> dict[str, Any]:
        return {"provider": self.provider, "fallback_chain": list(self.fallback_chain)}

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> CircuitOpen:
        return cls(str(inner["provider"]), [str(p) for p in inner.get("fallback_chain") or []])

    @property
    def is_failure(self) -> bool:
        return True

    def raise_for_failure(self) -> None:
        raise OutcomeFailure(self, f"circuit open for provider {self.provider}")


@dataclass(slots=True, eq=True)
class Scheduled(Outcome):
    kind: ClassVar[str] = "scheduled"
    tag: ClassVar[str] = "Scheduled"
    action_id: str = ""
    scheduled_for: datetime | None = None

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "scheduled_for": None if self.scheduled_for is None else format_rfc3339(self.scheduled_for),
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> Scheduled:
        return cls(str(inner["action_id"]), _dt(inner["scheduled_for"]))


@dataclass(slots=True, eq=True)
class RecurringCreated(Outcome):
    kind: ClassVar[str] = "recurring_created"
    tag: ClassVar[str] = "RecurringCreated"
    recurring_id: str = ""
    cron_expr: str = ""
    next_execution_at: datetime | None = None

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "recurring_id": self.recurring_id,
            "cron_expr": self.cron_expr,
            "next_execution_at": None
            if self.next_execution_at is None
            else format_rfc3339(self.next_execution_at),
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> RecurringCreated:
        return cls(str(inner["recurring_id"]), str(inner["cron_expr"]), _opt_dt(inner.get("next_execution_at")))


@dataclass(slots=True, eq=True)
class QuotaExceeded(Outcome):
    kind: ClassVar[str] = "quota_exceeded"
    tag: ClassVar[str] = "QuotaExceeded"
    tenant: str = ""
    limit: int = 0
    used: int = 0
    overage_behavior: str = "block"

    def _fields_to_wire(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "limit": self.limit,
            "used": self.used,
            "overage_behavior": self.overage_behavior,
        }

    @classmethod
    def _fields_from_wire(cls, inner: Any) -> QuotaExceeded:
        return cls(str(inner["tenant"]), int(inner["limit"]), int(inner["used"]), str(inner["overage_behavior"]))


def sanitize_outcome_wire(outcome: Outcome) -> Any:
    """The stream-event form: response bodies and approval URLs removed (core-pipeline §1.9)."""
    wire = outcome.to_wire()
    if isinstance(outcome, Executed):
        wire["Executed"] = {"status": outcome.response.status, "body": None, "headers": {}}
    elif isinstance(outcome, Rerouted):
        wire["Rerouted"]["response"] = {"status": outcome.response.status, "body": None, "headers": {}}
    elif isinstance(outcome, PendingApproval):
        wire["PendingApproval"]["approve_url"] = "[redacted]"
        wire["PendingApproval"]["reject_url"] = "[redacted]"
    return wire
