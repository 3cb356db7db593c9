"""Errors of the scheduling features.

``str()`` of each is exactly the message the HTTP API returns (server-api.md
§2.13), so a server can pass it through unchanged. The built-in base classes
(``ValueError``, ``LookupError``) let callers catch them idiomatically too.
"""

from __future__ import annotations

from acteon._exceptions import ActeonError


class RecurringError(ActeonError):
    """Base of the recurring-action errors."""


class RecurringValidationError(RecurringError, ValueError):
    """A recurring definition was refused (HTTP 400): bad cron, timezone, interval, field."""


class InvalidCronExpression(RecurringValidationError):
    """``invalid cron expression: {detail}``."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"invalid cron expression: {detail}")


class InvalidTimezone(RecurringValidationError):
    """``invalid timezone: {tz}``."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        super().__init__(f"invalid timezone: {timezone}")


class CronIntervalTooShort(RecurringValidationError):
    """``cron interval too short: {gap}s between occurrences, minimum is {min}s``."""

    def __init__(self, gap_seconds: int, minimum_seconds: int) -> None:
        self.gap_seconds = gap_seconds
        self.minimum_seconds = minimum_seconds
        super().__init__(
            f"cron interval too short: {gap_seconds}s between occurrences, minimum is {minimum_seconds}s"
        )


class CronNoFutureOccurrence(RecurringValidationError):
    """``cron expression has no future occurrences``."""

    def __init__(self) -> None:
        super().__init__("cron expression has no future occurrences")


class RecurringNotFoundError(RecurringError, LookupError):
    """``recurring action not found: {id}`` (HTTP 404)."""

    def __init__(self, recurring_id: str) -> None:
        self.recurring_id = recurring_id
        super().__init__(f"recurring action not found: {recurring_id}")

    def __str__(self) -> str:
        # LookupError would quote the argument; keep the plain message.
        return f"recurring action not found: {self.recurring_id}"


class RecurringConflictError(RecurringError):
    """Pause of a paused action or resume of an active one (HTTP 409)."""


class RecurringLimitError(RecurringError):
    """``recurring action limit reached for tenant ({max})`` (HTTP 429)."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        super().__init__(f"recurring action limit reached for tenant ({maximum})")


__all__ = [
    "CronIntervalTooShort",
    "CronNoFutureOccurrence",
    "InvalidCronExpression",
    "InvalidTimezone",
    "RecurringConflictError",
    "RecurringError",
    "RecurringLimitError",
    "RecurringNotFoundError",
    "RecurringValidationError",
]
