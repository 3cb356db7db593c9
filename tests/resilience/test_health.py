"""Provider health: execution statistics and the §20 entry shape of ``provider_health()``."""

from __future__ import annotations

import math

import anyio
import pytest

from acteon import Gateway, ProviderConnectionError
from acteon.outcomes import Executed, Failed
from acteon.providers._base import Provider
from acteon.resilience import LATENCY_SAMPLES, ProviderHealthRegistry
from acteon.testing import FailingProvider, FakeClock, RecordingProvider
from tests.resilience.conftest import gateway, make_action

pytestmark = pytest.mark.anyio

ENTRY_KEYS = {
    "provider", "healthy", "total_requests", "successes", "failures", "success_rate", "avg_latency_ms",
    "p50_latency_ms", "p95_latency_ms", "p99_latency_ms",
}


class Unhealthy(RecordingProvider):
    async def health_check(self) -> None:
        raise ProviderConnectionError("smtp unreachable")


class Hanging(RecordingProvider):
    async def health_check(self) -> None:
        await anyio.sleep(3600)


def test_registry_counts_and_percentiles() -> None:
    clock = FakeClock(1_000_000.0)
    reg = ProviderHealthRegistry(clock)
    for ms in range(1, 101):  # 1..100 ms
        reg.record("email", Executed(), ms / 1000)
    reg.record("email", Failed("CONNECTION", "connection error: down", True, 1), 0.5)
    stats = reg.get("email").to_dict()
    assert stats["total_requests"] == 101
    assert (stats["successes"], stats["failures"]) == (100, 1)
    assert stats["success_rate"] == pytest.approx(100 * 100 / 101)
    assert stats["avg_latency_ms"] == pytest.approx((5050 + 500) / 101)
    # nearest rank over 101 samples
    assert stats["p50_latency_ms"] == pytest.approx(51)
    assert stats["p95_latency_ms"] == pytest.approx(96)
    assert stats["p99_latency_ms"] == pytest.approx(100)
    assert stats["last_request_at"] == 1_000_000_000
    assert stats["last_error"] == "connection error: down"
    assert reg.get("never").to_dict() == {
        "total_requests": 0, "successes": 0, "failures": 0, "success_rate": 0.0, "avg_latency_ms": 0.0,
        "p50_latency_ms": 0.0, "p95_latency_ms": 0.0, "p99_latency_ms": 0.0}


def test_percentiles_cover_only_the_last_1000_calls() -> None:
    reg = ProviderHealthRegistry(FakeClock())
    for _ in range(LATENCY_SAMPLES):
        reg.record("email", Executed(), 1.0)  # 1 s each
    for _ in range(LATENCY_SAMPLES):
        reg.record("email", Executed(), 0.002)  # replaces every old sample, in ring order
    stats = reg.get("email")
    assert len(stats.samples) == LATENCY_SAMPLES
    assert stats.percentile_ms(99) == pytest.approx(2.0)
    assert stats.to_dict()["avg_latency_ms"] == pytest.approx((1000 * 1000 + 1000 * 2) / 2000)
    reg.record("email", Executed(), 0.001)
    assert stats.next_slot == 1 and min(stats.samples) == 0.001
    assert math.isclose(stats.percentile_ms(0.01), 1.0)


async def test_provider_health_entries() -> None:
    email = FailingProvider("email", failures=1)
    sms = Unhealthy("sms-fallback")
    quiet = RecordingProvider("quiet")
    async with gateway([email, sms, quiet], {"failure_threshold": 5}) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)
        assert isinstance(await gw.dispatch(make_action()), Executed)
        assert isinstance(await gw.dispatch(make_action(provider="sms-fallback")), Executed)
        entries = await gw.provider_health()
    assert [e["provider"] for e in entries] == ["email", "quiet", "sms-fallback"]
    email_e, quiet_e, sms_e = entries
    assert ENTRY_KEYS <= set(email_e)
    assert email_e["healthy"] is True and "health_check_error" not in email_e
    assert email_e["circuit_breaker_state"] == "closed"
    assert (email_e["total_requests"], email_e["successes"], email_e["failures"]) == (2, 1, 1)
    assert email_e["success_rate"] == 50.0
    assert email_e["last_error"] == "connection error: provider down"
    assert isinstance(email_e["last_request_at"], int)
    assert sms_e["healthy"] is False
    assert sms_e["health_check_error"] == "connection error: smtp unreachable"
    assert quiet_e["total_requests"] == 0 and "last_request_at" not in quiet_e and "last_error" not in quiet_e


async def test_health_without_breakers_and_on_every_path() -> None:
    email, sms = RecordingProvider("email"), RecordingProvider("sms-fallback")
    rules = "rules:\n  - {name: r, condition: {field: action.action_type, eq: moved}, " \
            "action: {type: reroute, target_provider: sms-fallback}}\n"
    async with gateway([email, sms], None, rules=rules) as gw:
        await gw.dispatch(make_action())
        await gw.dispatch(make_action(action_type="moved"))
        entries = {e["provider"]: e for e in await gw.provider_health()}
    assert "circuit_breaker_state" not in entries["email"]
    assert entries["email"]["total_requests"] == 1
    assert entries["sms-fallback"]["total_requests"] == 1  # reroutes count on their target


async def test_fallback_calls_count_on_the_fallback() -> None:
    email, sms = FailingProvider("email"), RecordingProvider("sms-fallback")
    cfg = {"failure_threshold": 1, "providers": {"email": {"fallback_provider": "sms-fallback"}}}
    async with gateway([email, sms], cfg) as gw:
        await gw.dispatch(make_action())
        await gw.dispatch(make_action())
        entries = {e["provider"]: e for e in await gw.provider_health()}
    assert entries["email"]["circuit_breaker_state"] == "open"
    assert (entries["email"]["failures"], entries["sms-fallback"]["successes"]) == (1, 1)


async def test_health_checks_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import acteon.resilience._api as api

    monkeypatch.setattr(api, "_HEALTH_CHECK_TIMEOUT", 0.05)
    async with gateway([Hanging("slow"), RecordingProvider("fast")]) as gw:
        entries = {e["provider"]: e for e in await gw.provider_health()}
    assert entries["slow"]["healthy"] is False
    assert entries["slow"]["health_check_error"] == "health check timed out after 0.05s"
    assert entries["fast"]["healthy"] is True


def test_blocking_twin() -> None:
    providers: list[Provider] = [RecordingProvider("email")]
    with Gateway(providers=providers, background=False) as gw:
        gw.dispatch(make_action())
        (entry,) = gw.provider_health()
    assert entry["successes"] == 1 and entry["healthy"] is True
