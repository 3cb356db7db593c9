"""Quota model: windows and counter keys (§10.2), JSON forms (§10.1), validation (§4, §10.5).

Scenarios 50, 51 and 52 of core-pipeline.md §22.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from acteon import AsyncGateway, ConfigurationError
from acteon.outcomes import Outcome, QuotaExceeded
from acteon.quotas import InvalidQuotaWindow, OverageBehavior, QuotaPolicy, QuotaUsage, QuotaWindow

NOW = datetime(2026, 2, 10, 14, 30, tzinfo=UTC)


def policy(**overrides: object) -> QuotaPolicy:
    data: dict[str, object] = {
        "id": "p1", "namespace": "ns", "tenant": "tenant-1", "max_actions": 10, "window": "hourly",
        "overage_behavior": "block", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    }
    data.update(overrides)
    return QuotaPolicy.model_validate(data)


# --------------------------------------------------------------------------- scenario 50: windows


def test_hourly_and_daily_buckets_are_epoch_aligned() -> None:
    hourly = QuotaWindow.coerce("hourly").bucket(NOW)
    assert (hourly.start, hourly.end) == (datetime(2026, 2, 10, 14, tzinfo=UTC), datetime(2026, 2, 10, 15, tzinfo=UTC))
    daily = QuotaWindow.coerce("daily").bucket(NOW)
    assert (daily.start, daily.end) == (datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 2, 11, tzinfo=UTC))
    assert hourly.index == int(NOW.timestamp()) // 3600


def test_weekly_buckets_start_on_thursdays_and_monthly_is_thirty_days() -> None:
    weekly = QuotaWindow.WEEKLY.bucket(NOW)
    assert weekly.start == datetime(2026, 2, 5, tzinfo=UTC)
    assert weekly.start.strftime("%A") == "Thursday"
    monthly = QuotaWindow.MONTHLY.bucket(NOW)
    assert (monthly.end - monthly.start).days == 30
    assert monthly.start.day != 1  # not a calendar month


def test_counter_ids_are_stable_and_differ_per_window() -> None:
    p = policy()
    index = p.window.bucket(NOW).index
    assert p.counter_id(index) == f"ns:tenant-1:hourly:{index}"
    assert p.counter_id(index).startswith("ns:tenant-1:hourly:")
    assert p.counter_id(p.window.bucket(NOW).index) == p.counter_id(index)  # same instant, same id
    assert p.counter_key(index) == f"ns:tenant-1:quota_usage:ns:tenant-1:hourly:{index}"
    daily = policy(window="daily")
    assert daily.counter_id(daily.window.bucket(NOW).index) != p.counter_id(index)


def test_labels_and_durations() -> None:
    windows = [QuotaWindow.coerce(w) for w in ("hourly", "daily", "weekly", "monthly", {"custom": {"seconds": 7200}})]
    assert [w.label for w in windows] == ["hourly", "daily", "weekly", "monthly", "custom_7200s"]
    assert [w.seconds for w in windows] == [3600, 86400, 604800, 2592000, 7200]


def test_zero_window_cannot_be_bucketed() -> None:
    with pytest.raises(ConfigurationError, match="zero duration"):
        QuotaWindow.custom(0).bucket(NOW)


def test_api_window_strings() -> None:
    assert QuotaWindow.parse("7200") == QuotaWindow.custom(7200)
    assert QuotaWindow.parse("weekly") is not None
    with pytest.raises(InvalidQuotaWindow) as zero:
        QuotaWindow.parse("0")
    assert str(zero.value) == "invalid window: custom seconds must be greater than 0"
    with pytest.raises(InvalidQuotaWindow) as bad:
        QuotaWindow.parse("fortnightly")
    assert str(bad.value) == "invalid window: fortnightly (expected hourly/daily/weekly/monthly or seconds as integer)"
    with pytest.raises(InvalidQuotaWindow):
        QuotaWindow.parse("-5")


# --------------------------------------------------------------------------- scenario 51: JSON


def test_minimal_policy_json_gets_defaults() -> None:
    p = QuotaPolicy.model_validate({
        "id": "q", "namespace": "ns", "tenant": "t", "max_actions": 5, "window": "hourly",
        "overage_behavior": "warn", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    })
    assert p.enabled is True
    assert p.description is None
    assert p.labels == {}
    assert p.to_wire() == {
        "id": "q", "namespace": "ns", "tenant": "t", "max_actions": 5, "window": "hourly",
        "overage_behavior": "warn", "enabled": True, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "description": None, "labels": {},
    }


@pytest.mark.parametrize(
    ("window", "behavior"),
    [
        ({"custom": {"seconds": 7200}}, {"degrade": {"fallback_provider": "sms-fallback"}}),
        ("monthly", {"notify": {"target": "ops-pager"}}),
        ("weekly", "block"),
    ],
)
def test_round_trips(window: object, behavior: object) -> None:
    p = policy(window=window, overage_behavior=behavior, description="d", labels={"team": "a"})
    wire = p.to_wire()
    assert wire["window"] == window
    assert wire["overage_behavior"] == behavior
    again = QuotaPolicy.model_validate_json(p.model_dump_json())
    assert again == p
    assert QuotaPolicy.from_wire(wire).to_wire() == wire


def test_timestamps_accept_offsets_and_emit_z() -> None:
    p = policy(created_at="2026-02-10T14:30:00.123456789+00:00")
    assert p.to_wire()["created_at"] == "2026-02-10T14:30:00.123456Z"


def test_bad_overage_behaviour_and_window_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="overage_behavior"):
        policy(overage_behavior="explode")
    with pytest.raises(ValidationError, match="invalid window"):
        policy(window={"custom": {}})
    with pytest.raises(ValidationError, match="must not contain ':'"):
        policy(tenant="a:b")


def test_overage_labels() -> None:
    assert OverageBehavior.degrade("sms").outcome_label == "degrade:sms"
    assert OverageBehavior.block().outcome_label == "block"
    assert str(OverageBehavior.notify("ops")) == "notify"


def test_usage_json() -> None:
    usage = QuotaUsage(
        tenant="t", namespace="ns", used=3, limit=10, remaining=7, window=QuotaWindow.HOURLY,
        resets_at=datetime(2026, 2, 10, 15, tzinfo=UTC), overage_behavior=OverageBehavior.warn(),
    )
    assert usage.to_wire() == {
        "tenant": "t", "namespace": "ns", "used": 3, "limit": 10, "remaining": 7, "window": "hourly",
        "resets_at": "2026-02-10T15:00:00Z", "overage_behavior": "warn",
    }


def test_quota_exceeded_wire_form() -> None:
    out = QuotaExceeded("tenant-1", 1000, 1000, "degrade:sms")
    assert out.to_wire() == {
        "QuotaExceeded": {"tenant": "tenant-1", "limit": 1000, "used": 1000, "overage_behavior": "degrade:sms"}
    }
    assert Outcome.from_wire(out.to_wire()) == out
    assert out.kind == "quota_exceeded"


# --------------------------------------------------------------------------- scenario 52: builder


def test_builder_rejects_zero_max_actions() -> None:
    with pytest.raises(ConfigurationError) as err:
        AsyncGateway(quota_policies=[policy(max_actions=0)], background=False)
    assert str(err.value) == "configuration error: quota policy 'ns:tenant-1' has max_actions = 0"


def test_builder_rejects_zero_window() -> None:
    with pytest.raises(ConfigurationError) as err:
        AsyncGateway(quota_policies=[policy(window={"custom": {"seconds": 0}})], background=False)
    assert str(err.value) == "configuration error: quota policy 'ns:tenant-1' has a zero-duration window"


def test_builder_names_the_bad_entry() -> None:
    with pytest.raises(ConfigurationError, match=r"quota_policies\[1\]: max_actions"):
        AsyncGateway(
            quota_policies=[policy(), {"namespace": "ns", "tenant": "b", "window": "daily", "overage_behavior": "warn"}],
            background=False,
        )


def test_builder_accepts_valid_policies() -> None:
    gw = AsyncGateway(quota_policies=[policy(), policy(id="p2", tenant="other")], background=False)
    assert len(gw._quotas.static) == 2
