"""``SchedulingConfig``: settings of scheduled and recurring actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acteon._exceptions import ConfigurationError

MAX_DELAY_SECONDS = 604_800
"""Longest accepted delay of a scheduled action (7 days), as upstream."""

DEFAULT_MIN_INTERVAL_SECONDS = 60
"""Shortest accepted gap between two occurrences of a recurring action."""


class SchedulingConfig(BaseModel):
    """Settings for ``AsyncGateway(scheduling=...)`` (a ``SchedulingConfig`` or a dict).

    - ``min_interval_seconds``: shortest gap between two recurring occurrences (60).
    - ``max_recurring_per_tenant``: recurring definitions per namespace/tenant (100).
    - ``claim_ttl_seconds``: how long one process owns a due item (300). It must exceed
      the longest dispatch (executor retries and timeouts included); it is also how
      long a crashed process delays the retry of what it had claimed.
    - ``grace_seconds``: how long a scheduled action is kept after its due time when no
      process delivers it (86400, as upstream); after that it expires.
    - ``max_delivery_attempts``: failed deliveries of a scheduled action before it is
      dead-lettered (5).
    - ``retry_backoff_seconds`` / ``max_retry_backoff_seconds``: first retry delay of a
      failed delivery, doubled on each further failure, capped (30 / 3600). A recurring
      occurrence whose dispatch failed is retried after ``retry_backoff_seconds`` until
      its next occurrence comes due.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_interval_seconds: int = Field(DEFAULT_MIN_INTERVAL_SECONDS, ge=0)
    max_recurring_per_tenant: int = Field(100, ge=1)
    claim_ttl_seconds: float = Field(300.0, gt=0)
    grace_seconds: float = Field(86_400.0, ge=0)
    max_delivery_attempts: int = Field(5, ge=1)
    retry_backoff_seconds: float = Field(30.0, gt=0)
    max_retry_backoff_seconds: float = Field(3600.0, gt=0)

    @classmethod
    def coerce(cls, value: SchedulingConfig | Mapping[str, Any] | None) -> SchedulingConfig:
        if value is None:
            return cls()
        if isinstance(value, SchedulingConfig):
            return value
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            raise ConfigurationError(f"invalid scheduling settings: {exc}") from exc

    def backoff(self, failures: int) -> float:
        """Delay before the retry that follows the ``failures``-th failure (1-based)."""
        delay = self.retry_backoff_seconds * (2 ** max(failures - 1, 0))
        return float(min(delay, self.max_retry_backoff_seconds))


def scheduling_kwargs(data: Mapping[str, Any]) -> dict[str, Any]:
    """``AsyncGateway`` keyword arguments from a config file: ``[scheduling]`` (the fields
    above) and upstream's ``[background] max_recurring_actions_per_tenant``."""
    settings: dict[str, Any] = {}
    background = data.get("background")
    if isinstance(background, Mapping) and "max_recurring_actions_per_tenant" in background:
        settings["max_recurring_per_tenant"] = background["max_recurring_actions_per_tenant"]
    section = data.get("scheduling")
    if section is not None:
        if not isinstance(section, Mapping):
            raise ConfigurationError("[scheduling] must be a table")
        settings.update(section)
    return {"scheduling": SchedulingConfig.coerce(settings)} if settings else {}


__all__ = ["DEFAULT_MIN_INTERVAL_SECONDS", "MAX_DELAY_SECONDS", "SchedulingConfig", "scheduling_kwargs"]
