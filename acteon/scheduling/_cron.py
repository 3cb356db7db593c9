"""Cron expressions: validation and next occurrence in an IANA time zone.

Accepted syntax is the standard 5-field crontab as the Rust gateway's ``croner``
parses it (core-pipeline.md §12.2): ``minute hour day-of-month month
day-of-week``; names (``MON-FRI``, ``JAN``) in any case; ranges, lists, steps;
``?`` as ``*``; ``L``, ``W`` and ``#``; weekday 0 and 7 are Sunday; the nicknames
``@yearly``/``@annually``/``@monthly``/``@weekly``/``@daily``/``@hourly``. A
seconds field (6 fields) is refused. When both day fields are restricted a day
matches if either does (``croniter``'s ``day_or=True``).

Occurrences are computed on local wall-clock time and converted to UTC:

- a local time that does not exist (clocks jump forward) fires at the jump,
  i.e. shifted forward by the gap (``02:30`` becomes ``03:30`` summer time);
- a local time that happens twice (clocks fall back) fires once, on its first
  pass -- unless the hour field is ``*``: such hourly-or-faster schedules keep
  firing through the repeated hour, so they never pause for an hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from acteon._tz import load_timezone
from acteon.scheduling._errors import (
    CronIntervalTooShort,
    CronNoFutureOccurrence,
    InvalidCronExpression,
    InvalidTimezone,
)

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELD_CHARS = re.compile(r"^[0-9A-Za-z*?/,\-#]+$")
# croner writes "last Friday of the month" as 5L / FRIL; croniter wants L5 / LFRI.
_LAST_WEEKDAY = re.compile(r"^([0-7]|[A-Za-z]{3})L$")
# Largest shift of local time at a zone transition (real zones shift by 2 h at most).
_MAX_SHIFT = timedelta(hours=3)
# Two transitions of one zone are always further apart than this, so equal UTC
# offsets at both ends of a shorter window mean no transition inside it.
_QUIET_SPAN = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated cron expression (``expr`` as given, ``normalized`` for croniter)."""

    expr: str
    normalized: str
    hour_wildcard: bool


@lru_cache(maxsize=1024)
def parse_cron(expr: str) -> CronSchedule:
    """Validate ``expr``; raises :class:`InvalidCronExpression` naming the problem."""
    if not isinstance(expr, str):
        raise InvalidCronExpression(f"expected a string, got {type(expr).__name__}")
    text = expr.strip()
    if not text:
        raise InvalidCronExpression("empty expression")
    if text.startswith("@"):
        expanded = _NICKNAMES.get(text.lower())
        if expanded is None:
            raise InvalidCronExpression(
                f"unknown nickname '{text}' (use one of {', '.join(sorted(_NICKNAMES))})"
            )
        text = expanded
    fields = text.split()
    if len(fields) != 5:
        hint = " (a seconds field is not supported)" if len(fields) == 6 else ""
        raise InvalidCronExpression(
            f"'{expr}' has {len(fields)} field(s); expected 5: minute hour day-of-month month day-of-week{hint}"
        )
    for name, value in zip(_FIELD_NAMES, fields, strict=True):
        if not _FIELD_CHARS.match(value):
            raise InvalidCronExpression(f"'{expr}': unexpected character in the {name} field '{value}'")
        # croniter's hashed (H) and random (R) extensions are not crontab syntax.
        if any(token.upper() in ("H", "R") for token in re.split(r"[,/\-]", value)):
            raise InvalidCronExpression(f"'{expr}': unsupported token in the {name} field '{value}'")
    fields = [f.replace("?", "*") for f in fields]
    fields[4] = ",".join(
        f"L{m.group(1)}" if (m := _LAST_WEEKDAY.match(item)) else item for item in fields[4].split(",")
    )
    normalized = " ".join(fields)
    try:
        croniter(normalized, datetime(2000, 1, 1), day_or=True)
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(exc))
        reason = re.sub(r"^is not acceptable,?\s*", "", reason) or "not a valid expression"
        raise InvalidCronExpression(f"'{expr}': {reason}") from exc
    return CronSchedule(expr, normalized, fields[1] == "*")


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA zone named exactly ``name`` (case-sensitive); :class:`InvalidTimezone` otherwise."""
    try:
        return load_timezone(name)
    except (ValueError, TypeError) as exc:
        raise InvalidTimezone(str(name)) from exc


def _as_schedule(cron: str | CronSchedule) -> CronSchedule:
    return cron if isinstance(cron, CronSchedule) else parse_cron(cron)


def _as_zone(tz: str | tzinfo) -> tzinfo:
    return validate_timezone(tz) if isinstance(tz, str) else tz


def _instants(local: datetime, zone: tzinfo, both_passes: bool) -> list[datetime]:
    """UTC instants at which the naive local time ``local`` fires (see module docs)."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first < second and both_passes:  # repeated local time
        return [first, second]
    return [first]  # normal, first pass of a repeated time, or shifted past a gap


def next_occurrence(cron: str | CronSchedule, tz: str | tzinfo, after: datetime) -> datetime | None:
    """First occurrence strictly after ``after``, as an aware UTC datetime; ``None`` if none."""
    schedule = _as_schedule(cron)
    zone = _as_zone(tz)
    after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
    local_after = after.astimezone(zone).replace(tzinfo=None)
    try:
        candidate: datetime = croniter(schedule.normalized, local_after, day_or=True).get_next(datetime)
    except CroniterBadDateError:
        return None
    instant: datetime = candidate.replace(tzinfo=zone, fold=0).astimezone(UTC)
    window_start, window_end = after - _MAX_SHIFT, instant + _MAX_SHIFT
    if (
        instant > after
        and window_end - window_start <= _QUIET_SPAN
        and _offset(zone, window_start) == _offset(zone, window_end)
    ):
        return instant  # no zone transition nearby: wall time maps one-to-one
    return _next_near_transition(schedule, zone, after, local_after)


def _offset(zone: tzinfo, instant: datetime) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _next_near_transition(
    schedule: CronSchedule, zone: tzinfo, after: datetime, local_after: datetime
) -> datetime | None:
    """Slow path: the local-to-UTC mapping may be non-monotonic, so look at every
    local candidate within the largest possible shift and keep the earliest instant."""
    it = croniter(schedule.normalized, local_after - _MAX_SHIFT, day_or=True)
    best: datetime | None = None
    horizon: datetime | None = None
    while True:
        try:
            candidate: datetime = it.get_next(datetime)
        except CroniterBadDateError:
            return best
        if horizon is not None and candidate > horizon:
            return best
        for instant in _instants(candidate, zone, schedule.hour_wildcard):
            if instant > after and (best is None or instant < best):
                best = instant
                if horizon is None:
                    # Any local time later than this by more than the largest shift
                    # maps to a later instant, so the search can stop there.
                    horizon = candidate + _MAX_SHIFT


def check_min_interval(
    cron: str | CronSchedule, tz: str | tzinfo, now: datetime, minimum_seconds: int
) -> datetime:
    """The first occurrence after ``now``, after checking the first gap is long enough.

    Raises :class:`CronNoFutureOccurrence` or :class:`CronIntervalTooShort`. As
    upstream, only the gap between the first two occurrences is checked.
    """
    first = next_occurrence(cron, tz, now)
    if first is None:
        raise CronNoFutureOccurrence()
    second = next_occurrence(cron, tz, first)
    if second is not None:
        gap = int((second - first).total_seconds())
        if gap < minimum_seconds:
            raise CronIntervalTooShort(gap, minimum_seconds)
    return first


__all__ = ["CronSchedule", "check_min_interval", "next_occurrence", "parse_cron", "validate_timezone"]
