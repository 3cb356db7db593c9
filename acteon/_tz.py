"""IANA time zones by exact, case-sensitive name (rules.md §8.10)."""

from __future__ import annotations

import zoneinfo
from functools import cache, lru_cache


@cache
def available_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


@lru_cache(maxsize=256)
def load_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The zone named exactly ``name``; ``ValueError('invalid timezone: <name>')`` otherwise."""
    if not name or name not in available_timezones():
        raise ValueError(f"invalid timezone: {name}")
    return zoneinfo.ZoneInfo(name)
