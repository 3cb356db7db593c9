"""Cron validation, next occurrence, DST and the stored models (core-pipeline.md §12, §22 59-62)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from acteon.scheduling import (
    DEFAULT_MIN_INTERVAL_SECONDS,
    CronIntervalTooShort,
    CronNoFutureOccurrence,
    InvalidCronExpression,
    InvalidTimezone,
    RecurringAction,
    check_min_interval,
    next_occurrence,
    parse_cron,
)
from acteon.scheduling._cron import validate_timezone

NOW = datetime(2026, 1, 15, 12, 0, 30, tzinfo=UTC)  # a Thursday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def series(cron: str, tz: str, start: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    t = start
    for _ in range(n):
        nxt = next_occurrence(cron, tz, t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


# ----------------------------------------------------------------------------- scenario 59: syntax


@pytest.mark.parametrize("expr", [
    "0 9 * * MON-FRI", "*/5 * * * *", "0 10 1 * *", "0 0 1 1 *", "0 9,17 * * 1-5",
    "0 9 * * mon-fri", "0 0 ? * *", "0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 * * 5L",
    "0 0 * * 7", "0 0 * JAN,jul *", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly",
])
def test_valid_expressions(expr: str) -> None:
    parse_cron(expr)
    assert next_occurrence(expr, "UTC", NOW) is not None


@pytest.mark.parametrize("expr", [
    "not a cron", "", "   ", "0 9 *", "60 9 * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8",
    "*/30 * * * * *", "0 0 1 1 * 2027", "H * * * *", "R 9 * * *", "@reboot", "@midnight", "0 0 */0 * *",
    "0 9 * * MON;rm",
])
def test_invalid_expressions(expr: str) -> None:
    with pytest.raises(InvalidCronExpression) as info:
        parse_cron(expr)
    assert str(info.value).startswith("invalid cron expression: ")


def test_six_fields_are_rejected_with_a_hint() -> None:
    with pytest.raises(InvalidCronExpression, match="seconds field is not supported"):
        parse_cron("*/30 * * * * *")


def test_invalid_cron_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid cron"):
        parse_cron("not a cron")


@pytest.mark.parametrize("tz", [
    "US/Eastern", "UTC", "US/Pacific", "Europe/London", "Asia/Tokyo", "Australia/Sydney", "America/New_York",
])
def test_valid_timezones(tz: str) -> None:
    assert validate_timezone(tz).key == tz


@pytest.mark.parametrize("tz", ["Not/A/Timezone", "", "utc", "europe/london", "Mars/Olympus"])
def test_invalid_timezones(tz: str) -> None:
    with pytest.raises(InvalidTimezone) as info:
        validate_timezone(tz)
    assert str(info.value) == f"invalid timezone: {tz}"


# ----------------------------------------------------------------------------- scenario 60: minimum interval


def test_default_minimum_interval_is_60() -> None:
    assert DEFAULT_MIN_INTERVAL_SECONDS == 60


@pytest.mark.parametrize("expr,minimum,ok", [
    ("* * * * *", 60, True),
    ("* * * * *", 300, False),
    ("0 * * * *", 60, True),
    ("0 9 * * *", 3600, True),
    ("*/5 * * * *", 600, False),
    ("*/5 * * * *", 300, True),
])
@pytest.mark.parametrize("tz", ["UTC", "US/Eastern"])
def test_minimum_interval(expr: str, minimum: int, ok: bool, tz: str) -> None:
    if ok:
        assert check_min_interval(expr, tz, NOW, minimum) == next_occurrence(expr, tz, NOW)
    else:
        with pytest.raises(CronIntervalTooShort, match="too short"):
            check_min_interval(expr, tz, NOW, minimum)


def test_interval_error_text() -> None:
    with pytest.raises(CronIntervalTooShort) as info:
        check_min_interval("* * * * *", "UTC", NOW, 300)
    assert str(info.value) == "cron interval too short: 60s between occurrences, minimum is 300s"
    assert str(CronIntervalTooShort(30, 60)) == "cron interval too short: 30s between occurrences, minimum is 60s"


def test_only_the_first_gap_is_checked() -> None:
    # 09:00 and 09:01 are a minute apart, then a day passes: only the first gap counts.
    with pytest.raises(CronIntervalTooShort):
        check_min_interval("0,1 9 * * *", "UTC", at("2026-01-15T08:00:00Z"), 120)


def test_no_future_occurrence() -> None:
    with pytest.raises(CronNoFutureOccurrence) as info:
        check_min_interval("0 0 30 2 *", "UTC", NOW, 60)
    assert "no future" in str(info.value)
    assert next_occurrence("0 0 31 2 *", "Europe/London", NOW) is None


# ----------------------------------------------------------------------------- scenario 61: next occurrence


def test_next_is_strictly_after() -> None:
    assert next_occurrence("0 12 * * *", "UTC", at("2026-01-15T12:00:00Z")) == at("2026-01-16T12:00:00Z")
    assert next_occurrence("0 12 * * *", "UTC", at("2026-01-15T11:59:59.999Z")) == at("2026-01-15T12:00:00Z")


@pytest.mark.parametrize("expr,gap", [("*/5 * * * *", 300), ("0 * * * *", 3600), ("0 9 * * *", 86400)])
def test_successive_gaps(expr: str, gap: int) -> None:
    runs = series(expr, "UTC", NOW, 6)
    assert all(b - a == timedelta(seconds=gap) for a, b in itertools.pairwise(runs))
    if expr == "0 9 * * *":
        assert all(r.hour == 9 and r.minute == 0 for r in runs)


def test_weekday_hours_in_new_york() -> None:
    ny = ZoneInfo("America/New_York")
    runs = series("0 9-17 * * 1-5", "America/New_York", NOW, 40)
    for r in runs:
        local = r.astimezone(ny)
        assert local.weekday() < 5 and 9 <= local.hour <= 17 and local.minute == 0


def test_first_of_month() -> None:
    runs = series("0 10 1 * *", "UTC", NOW, 3)
    assert runs == [at("2026-02-01T10:00:00Z"), at("2026-03-01T10:00:00Z"), at("2026-04-01T10:00:00Z")]


def test_returned_in_utc() -> None:
    nxt = next_occurrence("0 9 * * *", "Asia/Tokyo", NOW)
    assert nxt == at("2026-01-16T00:00:00Z") and nxt.utcoffset() == timedelta(0)


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: a day matches when either does (Vixie cron / croner).
    runs = series("0 0 13 * FRI", "UTC", at("2026-02-01T00:00:00Z"), 4)
    assert [r.day for r in runs] == [6, 13, 20, 27]


def test_last_weekday_and_nth_weekday() -> None:
    assert next_occurrence("0 0 * * 5L", "UTC", NOW) == at("2026-01-30T00:00:00Z")
    assert next_occurrence("0 0 * * 1#1", "UTC", NOW) == at("2026-02-02T00:00:00Z")
    assert next_occurrence("0 0 L * *", "UTC", NOW) == at("2026-01-31T00:00:00Z")


# ----------------------------------------------------------------------------- DST


def local(instants: list[datetime], tz: str) -> list[str]:
    return [i.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for i in instants]


def test_spring_forward_skipped_time_fires_at_the_jump() -> None:
    # New York, 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist that day.
    runs = series("30 2 * * *", "America/New_York", at("2026-03-07T12:00:00Z"), 3)
    assert local(runs, "America/New_York") == ["03-08 03:30-0400", "03-09 02:30-0400", "03-10 02:30-0400"]


def test_spring_forward_hourly_does_not_double_fire() -> None:
    runs = series("*/30 * * * *", "America/New_York", at("2026-03-08T05:00:00Z"), 5)
    assert local(runs, "America/New_York") == [
        "03-08 00:30-0500", "03-08 01:00-0500", "03-08 01:30-0500", "03-08 03:00-0400", "03-08 03:30-0400",
    ]
    assert len(set(runs)) == len(runs)


def test_fall_back_fixed_time_fires_once() -> None:
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice, the job runs on the first pass only.
    runs = series("30 1 * * *", "America/New_York", at("2026-10-31T12:00:00Z"), 3)
    assert local(runs, "America/New_York") == ["11-01 01:30-0400", "11-02 01:30-0500", "11-03 01:30-0500"]


def test_fall_back_hourly_keeps_running_through_the_repeated_hour() -> None:
    runs = series("0 * * * *", "America/New_York", at("2026-11-01T04:30:00Z"), 4)
    assert local(runs, "America/New_York") == [
        "11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500", "11-01 03:00-0500",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(runs))


def test_daily_job_keeps_local_time_across_dst() -> None:
    runs = series("0 9 * * *", "Europe/London", at("2026-03-27T12:00:00Z"), 4)
    assert [r.hour for r in runs] == [9, 8, 8, 8]  # BST starts 2026-03-29
    assert local(runs, "Europe/London")[0] == "03-28 09:00+0000"
    assert all(v.endswith("09:00+0100") for v in local(runs, "Europe/London")[1:])


def test_southern_hemisphere_dst() -> None:
    # Sydney leaves DST on 2026-04-05 03:00 AEDT -> 02:00 AEST.
    runs = series("30 2 * * *", "Australia/Sydney", at("2026-04-03T12:00:00Z"), 3)
    assert local(runs, "Australia/Sydney") == ["04-04 02:30+1100", "04-05 02:30+1100", "04-06 02:30+1000"]


# ----------------------------------------------------------------------------- scenario 62: stored JSON


def test_definition_with_only_required_fields() -> None:
    rec = RecurringAction.from_dict({
        "id": "r1", "namespace": "ns", "tenant": "t", "cron_expr": "0 9 * * *",
        "action_template": {"provider": "email", "action_type": "digest", "payload": {}},
        "created_at": "2026-01-15T12:00:00Z", "updated_at": "2026-01-15T12:00:00+00:00",
    })
    assert rec.timezone == "UTC" and rec.enabled is True and rec.execution_count == 0
    assert rec.last_executed_at is None and rec.next_execution_at is None and rec.ends_at is None
    assert rec.max_executions is None and rec.description is None and rec.labels == {}
    assert rec.action_template.metadata == {} and rec.action_template.dedup_key is None
    assert rec.to_dict() == {
        "id": "r1", "namespace": "ns", "tenant": "t", "cron_expr": "0 9 * * *", "timezone": "UTC",
        "enabled": True,
        "action_template": {"provider": "email", "action_type": "digest", "payload": {}, "metadata": {},
                            "dedup_key": None},
        "created_at": "2026-01-15T12:00:00Z", "updated_at": "2026-01-15T12:00:00Z",
        "last_executed_at": None, "next_execution_at": None, "ends_at": None, "max_executions": None,
        "execution_count": 0, "description": None, "labels": {},
    }


def test_huge_execution_count_round_trips() -> None:
    data = {
        "id": "r1", "namespace": "ns", "tenant": "t", "cron_expr": "0 9 * * *",
        "action_template": {"provider": "email", "action_type": "digest", "payload": None},
        "created_at": "2026-01-15T12:00:00Z", "updated_at": "2026-01-15T12:00:00Z",
        "execution_count": 2**64 - 1,
    }
    rec = RecurringAction.from_json(json.dumps(data))
    assert RecurringAction.from_json(rec.to_json()).execution_count == 2**64 - 1


def test_error_displays() -> None:
    assert str(InvalidCronExpression("bad")) == "invalid cron expression: bad"
    assert str(InvalidTimezone("Mars/Olympus")) == "invalid timezone: Mars/Olympus"
    assert "no future" in str(CronNoFutureOccurrence())
