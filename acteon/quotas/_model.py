"""Quota policies, windows and usage (core-pipeline.md §10, server-api.md §2.12).

The JSON forms are the upstream ones: windows are ``"hourly"``, ``"daily"``,
``"weekly"``, ``"monthly"`` or ``{"custom": {"seconds": N}}``; overage
behaviours are ``"block"``, ``"warn"``, ``{"degrade": {"fallback_provider": P}}``
or ``{"notify": {"target": P}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_core import core_schema

from acteon._exceptions import ActeonError, ConfigurationError, GatewayError
from acteon._timefmt import coerce_datetime, format_rfc3339

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAMED_WINDOWS: dict[str, int] = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000}
_OVERAGE_KINDS = ("block", "warn", "degrade", "notify")


class InvalidQuotaPolicy(ActeonError, ValueError):
    """A quota policy given to the management methods does not validate (the message names the field)."""


class InvalidQuotaWindow(InvalidQuotaPolicy):
    """A window that is neither a named window nor a positive number of seconds."""


class QuotaPolicyNotFound(GatewayError, LookupError):
    """No quota policy has this id (``quota policy not found: <id>``)."""

    def __init__(self, policy_id: str) -> None:
        self.policy_id = policy_id
        super().__init__(f"quota policy not found: {policy_id}")


class QuotaPolicyConflict(GatewayError):
    """A policy already exists for the (namespace, tenant) pair: there is one per pair."""

    def __init__(self, namespace: str, tenant: str) -> None:
        self.namespace = namespace
        self.tenant = tenant
        super().__init__(f"a quota policy already exists for namespace={namespace} tenant={tenant}")


def first_error(exc: ValidationError) -> str:
    """``field: message`` of a validation error's first problem, for messages that name the field."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WindowBucket:
    """One epoch-aligned window: ``index = floor(unix_seconds / length)``, ``[start, end)``."""

    index: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """A fixed, epoch-aligned counting window.

    Buckets start at multiples of the length since the Unix epoch, so ``weekly``
    buckets begin on Thursdays 00:00 UTC and ``monthly`` is a 30-day span, as
    upstream. Build one with :meth:`coerce` from any accepted form.
    """

    name: str
    """``hourly``, ``daily``, ``weekly``, ``monthly`` or ``custom``."""
    custom_seconds: int = 0

    HOURLY: ClassVar[QuotaWindow]
    DAILY: ClassVar[QuotaWindow]
    WEEKLY: ClassVar[QuotaWindow]
    MONTHLY: ClassVar[QuotaWindow]

    @classmethod
    def custom(cls, seconds: int) -> QuotaWindow:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise InvalidQuotaWindow(f"invalid window: custom seconds must be a non-negative integer, got {seconds!r}")
        return cls("custom", seconds)

    @property
    def seconds(self) -> int:
        """Length in seconds (0 only for an invalid custom window)."""
        return self.custom_seconds if self.name == "custom" else _NAMED_WINDOWS[self.name]

    @property
    def label(self) -> str:
        """The counter-key label: ``hourly`` ... or ``custom_{N}s``."""
        return f"custom_{self.custom_seconds}s" if self.name == "custom" else self.name

    def bucket(self, now: datetime) -> WindowBucket:
        """The window containing ``now``. A zero-length window raises ``ConfigurationError``."""
        length = self.seconds
        if length <= 0:
            raise ConfigurationError("quota window has a zero duration")
        index = int(now.timestamp() // length)
        start = _EPOCH + timedelta(seconds=index * length)
        return WindowBucket(index, start, start + timedelta(seconds=length))

    def to_wire(self) -> str | dict[str, Any]:
        if self.name == "custom":
            return {"custom": {"seconds": self.custom_seconds}}
        return self.name

    @classmethod
    def parse(cls, text: str) -> QuotaWindow:
        """The HTTP API's string form: a window name or a positive integer of seconds."""
        if text in _NAMED_WINDOWS:
            return cls(text)
        if text.isascii() and text.isdigit():
            seconds = int(text)
            if seconds == 0:
                raise InvalidQuotaWindow("invalid window: custom seconds must be greater than 0")
            return cls("custom", seconds)
        raise InvalidQuotaWindow(
            f"invalid window: {text} (expected hourly/daily/weekly/monthly or seconds as integer)"
        )

    @classmethod
    def coerce(cls, value: Any) -> QuotaWindow:
        """Accept a ``QuotaWindow``, a name, a string or int of seconds, or ``{"custom": {"seconds": N}}``."""
        if isinstance(value, QuotaWindow):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value <= 0:
                raise InvalidQuotaWindow("invalid window: custom seconds must be greater than 0")
            return cls("custom", value)
        if isinstance(value, Mapping) and set(value) == {"custom"}:
            inner = value["custom"]
            if isinstance(inner, Mapping) and set(inner) == {"seconds"}:
                return cls.custom(inner["seconds"])
        raise InvalidQuotaWindow(
            f"invalid window: {value!r} (expected hourly/daily/weekly/monthly, seconds as integer, "
            'or {"custom": {"seconds": N}})'
        )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.coerce, serialization=core_schema.plain_serializer_function_ser_schema(lambda w: w.to_wire())
        )

    def __str__(self) -> str:
        return self.label


QuotaWindow.HOURLY = QuotaWindow("hourly")
QuotaWindow.DAILY = QuotaWindow("daily")
QuotaWindow.WEEKLY = QuotaWindow("weekly")
QuotaWindow.MONTHLY = QuotaWindow("monthly")


# --------------------------------------------------------------------------- overage behaviour


@dataclass(frozen=True, slots=True)
class OverageBehavior:
    """What happens to an action over the limit: ``block``, ``warn``, ``degrade`` or ``notify``."""

    kind: str
    fallback_provider: str | None = None
    """The provider a ``degrade`` policy moves actions to."""
    target: str | None = None
    """The provider a ``notify`` policy sends its notification to."""

    @classmethod
    def block(cls) -> OverageBehavior:
        return cls("block")

    @classmethod
    def warn(cls) -> OverageBehavior:
        return cls("warn")

    @classmethod
    def degrade(cls, fallback_provider: str) -> OverageBehavior:
        return cls("degrade", fallback_provider=_provider_name(fallback_provider, "degrade.fallback_provider"))

    @classmethod
    def notify(cls, target: str) -> OverageBehavior:
        return cls("notify", target=_provider_name(target, "notify.target"))

    @property
    def outcome_label(self) -> str:
        """``overage_behavior`` of a ``QuotaExceeded`` outcome: ``block`` or ``degrade:{fallback}``."""
        return f"degrade:{self.fallback_provider}" if self.kind == "degrade" else self.kind

    def to_wire(self) -> str | dict[str, Any]:
        if self.kind == "degrade":
            return {"degrade": {"fallback_provider": self.fallback_provider}}
        if self.kind == "notify":
            return {"notify": {"target": self.target}}
        return self.kind

    @classmethod
    def coerce(cls, value: Any) -> OverageBehavior:
        """Accept an ``OverageBehavior``, ``"block"``/``"warn"`` or the tagged object forms."""
        if isinstance(value, OverageBehavior):
            return value
        if value in ("block", "warn"):
            return cls(str(value))
        if isinstance(value, Mapping) and len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "degrade" and isinstance(inner, Mapping) and set(inner) == {"fallback_provider"}:
                return cls.degrade(inner["fallback_provider"])
            if tag == "notify" and isinstance(inner, Mapping) and set(inner) == {"target"}:
                return cls.notify(inner["target"])
        raise ValueError(
            f"invalid overage_behavior: {value!r} (expected \"block\", \"warn\", "
            '{"degrade": {"fallback_provider": "..."}} or {"notify": {"target": "..."}})'
        )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.coerce, serialization=core_schema.plain_serializer_function_ser_schema(lambda b: b.to_wire())
        )

    def __str__(self) -> str:
        return self.kind


def _provider_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid overage_behavior: {where} must be a non-empty provider name, got {value!r}")
    return value


# --------------------------------------------------------------------------- policy and usage


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


def _check_scope(value: str, field: str) -> str:
    # The pair is part of every counter and index key, where ':' separates segments.
    if not value or ":" in value:
        raise ValueError(f"quota policy {field} must be non-empty and must not contain ':', got {value!r}")
    return value


class QuotaPolicy(BaseModel):
    """A limit of ``max_actions`` per ``window`` for one (namespace, tenant).

    ``id``, ``created_at`` and ``updated_at`` are generated when omitted. The
    serialised form (``to_wire()``) is the stored upstream JSON.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(default_factory=_new_id)
    namespace: str
    tenant: str
    max_actions: int = Field(ge=0)
    window: QuotaWindow
    overage_behavior: OverageBehavior
    enabled: bool = True
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        return _check_scope(value, "namespace")

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        return _check_scope(value, "tenant")

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return coerce_datetime(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_serializer("created_at", "updated_at")
    def _ser_time(self, value: datetime) -> str:
        return format_rfc3339(value)

    @property
    def key(self) -> str:
        """``"{namespace}:{tenant}"``: the scope the policy applies to."""
        return f"{self.namespace}:{self.tenant}"

    def validate_limits(self) -> None:
        """The builder checks (core-pipeline.md §4): a zero limit or a zero-length window is refused."""
        if self.max_actions == 0:
            raise ConfigurationError(f"quota policy '{self.key}' has max_actions = 0")
        if self.window.seconds <= 0:
            raise ConfigurationError(f"quota policy '{self.key}' has a zero-duration window")

    def counter_id(self, index: int) -> str:
        """Counter id ``{ns}:{tenant}:{label}:{index}`` (core-pipeline.md §10.2)."""
        return f"{self.namespace}:{self.tenant}:{self.window.label}:{index}"

    def counter_key(self, index: int) -> str:
        """Full state key ``{ns}:{tenant}:quota_usage:{counter id}``."""
        return f"{self.namespace}:{self.tenant}:quota_usage:{self.counter_id(index)}"

    def to_wire(self) -> dict[str, Any]:
        """The stored JSON object: every field, ``description`` null and ``labels`` {} when unset."""
        return self.model_dump(mode="json")

    @classmethod
    def from_wire(cls, data: Any) -> QuotaPolicy:
        return cls.model_validate(data)


class QuotaUsage(BaseModel):
    """Usage of one policy in the current window (``GET /v1/quotas/{id}/usage``)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    namespace: str
    used: int
    limit: int
    remaining: int
    window: QuotaWindow
    resets_at: datetime
    overage_behavior: OverageBehavior

    @field_serializer("resets_at")
    def _ser_time(self, value: datetime) -> str:
        return format_rfc3339(value)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
