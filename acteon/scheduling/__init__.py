"""Scheduled (delayed) and recurring (cron) actions.

- A ``schedule`` rule verdict or an ``Action.dispatch_at`` in the future stores
  the action and returns ``Scheduled``; the ``scheduled_actions`` background job
  delivers it through the full pipeline when due (:mod:`.scheduled`).
- Recurring actions are cron definitions managed through the gateway
  (``create_recurring`` ...); the ``recurring_actions`` job fires each occurrence
  once across processes (:mod:`.recurring`).

Wired into the gateway by :func:`attach` (listed in ``acteon._features``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon.scheduling._config import DEFAULT_MIN_INTERVAL_SECONDS, MAX_DELAY_SECONDS, SchedulingConfig
from acteon.scheduling._cron import CronSchedule, check_min_interval, next_occurrence, parse_cron
from acteon.scheduling._errors import (
    CronIntervalTooShort,
    CronNoFutureOccurrence,
    InvalidCronExpression,
    InvalidTimezone,
    RecurringConflictError,
    RecurringError,
    RecurringLimitError,
    RecurringNotFoundError,
    RecurringValidationError,
)
from acteon.scheduling._model import RecurringAction, RecurringActionTemplate, ScheduledAction
from acteon.scheduling._origin import Origin, dispatch_origin
from acteon.scheduling.recurring import RecurringActions
from acteon.scheduling.scheduled import ScheduledActions, ScheduledDeliveryError

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


class SchedulingFeature:
    """The scheduling state kept on one gateway (``gateway._scheduling``)."""

    def __init__(self, gateway: AsyncGateway, config: SchedulingConfig) -> None:
        self.config = config
        self.scheduled = ScheduledActions(gateway, config)
        self.recurring = RecurringActions(gateway, config)


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the ``schedule`` verdict, the ``dispatch_at`` hook and both jobs."""
    feature = SchedulingFeature(gateway, SchedulingConfig.coerce(options.get("scheduling")))
    gateway._scheduling = feature
    gateway._verdict_handlers["schedule"] = feature.scheduled.handle_verdict
    gateway._deferral_hook = feature.scheduled.defer
    gateway._jobs["scheduled_actions"] = feature.scheduled.run_due
    gateway._jobs["recurring_actions"] = feature.recurring.run_due


__all__ = [
    "DEFAULT_MIN_INTERVAL_SECONDS",
    "MAX_DELAY_SECONDS",
    "CronIntervalTooShort",
    "CronNoFutureOccurrence",
    "CronSchedule",
    "InvalidCronExpression",
    "InvalidTimezone",
    "Origin",
    "RecurringAction",
    "RecurringActionTemplate",
    "RecurringActions",
    "RecurringConflictError",
    "RecurringError",
    "RecurringLimitError",
    "RecurringNotFoundError",
    "RecurringValidationError",
    "ScheduledAction",
    "ScheduledActions",
    "ScheduledDeliveryError",
    "SchedulingConfig",
    "SchedulingFeature",
    "attach",
    "check_min_interval",
    "dispatch_origin",
    "next_occurrence",
    "parse_cron",
]
