"""RFC 3339 and duration formatting in the upstream wire forms.

Timestamps are emitted in UTC with a ``Z`` suffix and 0, 3 or 6 fractional
digits (DECISIONS D3); any RFC 3339 text is accepted on input, including
nanosecond fractions (truncated to microseconds) and ``+00:00`` offsets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})$"
)


def format_rfc3339(value: datetime) -> str:
    """``2026-02-10T14:30:00.123456Z`` style, trimming to 0/3/6 fraction digits."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset() != timedelta(0):
        value = value.astimezone(UTC)
    base = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    us = value.microsecond
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse any RFC 3339 timestamp into an aware UTC datetime."""
    m = _RFC3339.match(text.strip())
    if m is None:
        raise ValueError(f"invalid RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        from datetime import timezone

        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    return dt.astimezone(UTC)


def coerce_datetime(value: Any) -> datetime:
    """Accept a datetime or RFC 3339 string; naive datetimes are taken as UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError(f"expected an RFC 3339 timestamp, got {type(value).__name__}")


def duration_to_wire(seconds: float | timedelta) -> dict[str, int]:
    """A Rust ``Duration`` as ``{"secs": u64, "nanos": u32}``."""
    if isinstance(seconds, timedelta):
        total_us = (seconds.days * 86400 + seconds.seconds) * 1_000_000 + seconds.microseconds
    else:
        total_us = round(seconds * 1_000_000)
    total_us = max(total_us, 0)
    return {"secs": total_us // 1_000_000, "nanos": (total_us % 1_000_000) * 1000}


def duration_from_wire(value: Any) -> timedelta:
    """Inverse of :func:`duration_to_wire`; also accepts a plain number of seconds."""
    if isinstance(value, dict):
        return timedelta(seconds=int(value.get("secs", 0)), microseconds=int(value.get("nanos", 0)) // 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise ValueError(f"expected a duration object {{secs, nanos}}, got {value!r}")


def format_rust_duration(seconds: float) -> str:
    """Rust ``Debug`` rendering used in messages: ``30s``, ``500ms``, ``1.5s``, ``0ns``."""
    if seconds <= 0:
        return "0ns"
    if seconds >= 1:
        text = f"{seconds:.9f}".rstrip("0").rstrip(".")
        return f"{text}s"
    ms = seconds * 1000
    if ms >= 1:
        text = f"{ms:.6f}".rstrip("0").rstrip(".")
        return f"{text}ms"
    us = seconds * 1_000_000
    if us >= 1:
        text = f"{us:.3f}".rstrip("0").rstrip(".")
        return f"{text}µs"
    return f"{round(seconds * 1e9)}ns"
