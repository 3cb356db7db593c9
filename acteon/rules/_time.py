"""The ``time`` map and timezone lookup (rules.md §8.10).

Timezone names are exact, case-sensitive IANA ids (legacy aliases such as
``US/Eastern`` included). ``zoneinfo`` alone is not enough to check that: on
a case-insensitive filesystem ``ZoneInfo("us/eastern")`` loads, so names are
checked against the tz database's list first.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from acteon.rules._errors import InvalidTimezone

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_ZONES: dict[str, tzinfo | None] = {"UTC": UTC}


@lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def lookup_zone(name: str) -> tzinfo | None:
    """The zone for an exact IANA name, or ``None`` when it does not exist (cached)."""
    try:
        return _ZONES[name]
    except KeyError:
        pass
    zone: tzinfo | None = None
    if name in _known_names():
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
    if len(_ZONES) > 4096:  # names come from rule files and callers: keep the cache bounded
        _ZONES.clear()
        _ZONES["UTC"] = UTC
    _ZONES[name] = zone
    return zone


def resolve_zone(name: str) -> tzinfo:
    """The zone for ``name`` or :class:`InvalidTimezone` (``invalid timezone: <name>``)."""
    zone = lookup_zone(name)
    if zone is None:
        raise InvalidTimezone(name)
    return zone


def is_valid_zone(name: str) -> bool:
    return lookup_zone(name) is not None


def unix_seconds(now: datetime) -> int:
    """Whole Unix seconds, floored (chrono's ``timestamp()``)."""
    delta = now - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86400 + delta.seconds


def time_map(now: datetime, zone: tzinfo | None) -> dict[str, Any]:
    """``hour minute second day month year weekday weekday_num timestamp`` in ``zone``."""
    local = now.astimezone(zone or UTC)
    wd = local.weekday()
    return {
        "hour": local.hour,
        "minute": local.minute,
        "second": local.second,
        "day": local.day,
        "month": local.month,
        "year": local.year,
        "weekday": WEEKDAYS[wd],
        "weekday_num": wd + 1,
        "timestamp": unix_seconds(now),
    }


def tagged(value: Any) -> Any:
    """A runtime value in upstream's externally tagged JSON form (``{"Int": 14}``)."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return {"Bool": value}
    if isinstance(value, int):
        return {"Int": value}
    if isinstance(value, float):
        return {"Float": value}
    if isinstance(value, str):
        return {"String": value}
    if isinstance(value, list):
        return {"List": [tagged(v) for v in value]}
    if isinstance(value, dict):
        return {"Map": {k: tagged(v) for k, v in value.items()}}
    return {"String": str(value)}


def untagged(value: Any) -> Any:
    """Inverse of :func:`tagged`."""
    if value == "Null":
        return None
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "List":
            return [untagged(v) for v in inner]
        if tag == "Map":
            return {k: untagged(v) for k, v in inner.items()}
        return inner
    return value
