"""Breakers inside the dispatch pipeline (core-pipeline.md §5.3, §8.5-8.7; §22 scenarios 30-36, 42)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from acteon import AsyncGateway, ConfigurationError, Gateway, ProviderResponse, UsageError
from acteon.outcomes import CircuitOpen, Executed, Failed, Rerouted
from acteon.resilience import CircuitBreakerConfig, CircuitBreakerNotFound, CircuitBreakerSettings, circuit_key
from acteon.state._base import StateStore
from acteon.state.memory import MemoryStateStore
from acteon.testing import FailingProvider, FakeClock, RecordingProvider
from tests.resilience.conftest import gateway, make_action

pytestmark = pytest.mark.anyio


def counters(gw: AsyncGateway, *names: str) -> dict[str, int]:
    snap = gw.metrics.snapshot()
    return {n: snap[n] for n in names}


# --------------------------------------------------------------------------- §22 scenarios


async def test_30_default_breaker_opens_without_fallback() -> None:
    email = FailingProvider("email")
    cfg = {"failure_threshold": 2, "success_threshold": 1, "recovery_timeout_seconds": 3600}
    async with gateway([email, RecordingProvider("sms-fallback")], cfg) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)
        assert isinstance(await gw.dispatch(make_action()), Failed)
        assert await gw.dispatch(make_action()) == CircuitOpen("email", [])
        assert email.calls == 2
        assert counters(gw, "circuit_open", "failed", "executed", "circuit_transitions") == {
            "circuit_open": 1, "failed": 2, "executed": 0, "circuit_transitions": 1}


async def test_31_open_breaker_reroutes_to_fallback() -> None:
    email, sms = FailingProvider("email"), RecordingProvider("sms-fallback")
    cfg = {"providers": {"email": {"failure_threshold": 1, "success_threshold": 1,
                                   "recovery_timeout_seconds": 3600, "fallback_provider": "sms-fallback"}}}
    async with gateway([email, sms], cfg) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)
        outcome = await gw.dispatch(make_action())
        assert isinstance(outcome, Rerouted)
        assert (outcome.original_provider, outcome.new_provider) == ("email", "sms-fallback")
        assert outcome.response.body == {"ok": True}
        # the fallback runs the action with its original provider field
        assert sms.actions[0].provider == "email"
        # §8.6: only circuit_fallbacks counts; executed/rerouted/failed do not
        assert counters(gw, "circuit_fallbacks", "rerouted", "executed", "failed") == {
            "circuit_fallbacks": 1, "rerouted": 0, "executed": 0, "failed": 1}


async def test_32_healthy_provider_stays_closed() -> None:
    async with gateway([RecordingProvider("email")], {"failure_threshold": 5}) as gw:
        for _ in range(5):
            assert isinstance(await gw.dispatch(make_action()), Executed)
        statuses = await gw.circuit_breakers()
        assert statuses is not None and statuses[0]["state"] == "closed"
        assert counters(gw, "executed", "circuit_transitions") == {"executed": 5, "circuit_transitions": 0}


async def test_33_no_breakers_configured() -> None:
    for option in (None, False, {"enabled": False}):
        async with gateway([RecordingProvider("email")], option) as gw:
            for _ in range(10):
                assert isinstance(await gw.dispatch(make_action()), Executed)
            assert await gw.circuit_breakers() is None
            with pytest.raises(UsageError, match="circuit breakers are not enabled"):
                await gw.trip_circuit("email")


async def test_34_one_breaker_per_provider_with_overrides() -> None:
    providers = [RecordingProvider("email"), RecordingProvider("sms-fallback"), RecordingProvider("webhook")]
    async with gateway(providers, True) as gw:
        statuses = await gw.circuit_breakers()
        assert statuses is not None
        assert [s["provider"] for s in statuses] == ["email", "sms-fallback", "webhook"]
    override = {"failure_threshold": 10, "success_threshold": 3, "recovery_timeout_seconds": 120,
                "fallback_provider": "webhook"}
    providers = [RecordingProvider("email"), RecordingProvider("webhook")]
    async with gateway(providers, {"providers": {"email": override}}) as gw:
        by_name = {s["provider"]: s for s in await gw.circuit_breakers() or []}
        assert by_name["email"] == {"provider": "email", "state": "closed", "failure_threshold": 10,
                                    "success_threshold": 3, "recovery_timeout_seconds": 120,
                                    "fallback_provider": "webhook"}
        assert by_name["webhook"]["failure_threshold"] == 5
        assert "fallback_provider" not in by_name["webhook"]


async def test_35_zero_recovery_probes_every_time() -> None:
    email = FailingProvider("email")
    cfg = {"failure_threshold": 1, "success_threshold": 1, "recovery_timeout_seconds": 0}
    async with gateway([email], cfg) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)
        assert (await gw.circuit_breakers() or [])[0]["state"] == "open"
        for _ in range(2):
            assert isinstance(await gw.dispatch(make_action()), Failed)  # a probe, which fails
            assert (await gw.circuit_breakers() or [])[0]["state"] == "open"
        assert email.calls == 3
        # closed->open, then (open->half_open, half_open->open) twice
        assert counters(gw, "circuit_transitions", "failed") == {"circuit_transitions": 5, "failed": 3}


def chain_settings(*names: str, threshold: int = 1) -> dict[str, Any]:
    providers = {}
    for name, nxt in zip(names, [*names[1:], None], strict=True):
        entry: dict[str, Any] = {"failure_threshold": threshold, "recovery_timeout_seconds": 3600}
        if nxt is not None:
            entry["fallback_provider"] = nxt
        providers[name] = entry
    return {"providers": providers}


async def test_36_recursive_fallback_chain() -> None:
    a, b, c = FailingProvider("provider-a"), FailingProvider("provider-b"), RecordingProvider("provider-c")
    async with gateway([a, b, c], chain_settings("provider-a", "provider-b", "provider-c")) as gw:
        await gw.dispatch(make_action(provider="provider-a"))
        await gw.dispatch(make_action(provider="provider-b"))
        outcome = await gw.dispatch(make_action(provider="provider-a"))
        assert isinstance(outcome, Rerouted)
        assert (outcome.original_provider, outcome.new_provider) == ("provider-a", "provider-c")
        assert a.calls == 1 and b.calls == 1 and c.calls == 1
        await gw.trip_circuit("provider-c")
        assert await gw.dispatch(make_action(provider="provider-a")) == CircuitOpen(
            "provider-a", ["provider-b", "provider-c"])
        assert counters(gw, "circuit_open", "circuit_fallbacks") == {"circuit_open": 1, "circuit_fallbacks": 1}
    regions = ["region-us", "region-eu", "region-ap", "region-backup"]
    providers = [*(FailingProvider(r) for r in regions[:3]), RecordingProvider("region-backup")]
    async with gateway(providers, chain_settings(*regions)) as gw:
        for region in regions[:3]:
            await gw.trip_circuit(region)
        outcome = await gw.dispatch(make_action(provider="region-us"))
        assert isinstance(outcome, Rerouted) and outcome.new_provider == "region-backup"


async def test_42_builder_validation_messages() -> None:
    email = [RecordingProvider("email")]
    with pytest.raises(ConfigurationError, match="circuit breaker config for 'email': failure_threshold must be >= 1"):
        gateway(email, {"failure_threshold": 0})
    with pytest.raises(ConfigurationError, match="success_threshold"):
        gateway(email, {"providers": {"email": {"success_threshold": 0}}})
    with pytest.raises(ConfigurationError,
                       match="circuit breaker for 'email' references unknown fallback provider 'nonexistent'"):
        gateway(email, {"providers": {"email": {"fallback_provider": "nonexistent"}}})
    with pytest.raises(ConfigurationError, match="circuit breaker for 'email' has self-referencing fallback"):
        gateway(email, {"providers": {"email": {"fallback_provider": "email"}}})
    abc = [RecordingProvider(n) for n in "abc"]
    cycle = {"providers": {"a": {"fallback_provider": "b"}, "b": {"fallback_provider": "c"},
                           "c": {"fallback_provider": "a"}}}
    with pytest.raises(ConfigurationError, match="circuit breaker fallback chain contains a cycle: a → … → a → …"):
        gateway(abc, cycle)
    gateway(abc, {"providers": {"a": {"fallback_provider": "b"}, "b": {"fallback_provider": "c"}}})
    # an override for a provider that is not registered is ignored, as upstream
    gw = gateway(email, {"providers": {"ghost": {"fallback_provider": "nowhere"}}})
    assert gw._breakers is not None and list(gw._breakers) == ["email"]


def test_settings_parsing_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"\[circuit_breaker\]: unknown key\(s\) failure_treshold"):
        CircuitBreakerSettings.coerce({"failure_treshold": 3})
    with pytest.raises(ConfigurationError, match=r"\[circuit_breaker.providers.email\]: unknown key"):
        CircuitBreakerSettings.coerce({"providers": {"email": {"fallback": "x"}}})
    with pytest.raises(ConfigurationError, match="failure_threshold must be an integer, got '3'"):
        CircuitBreakerSettings.coerce({"failure_threshold": "3"})
    with pytest.raises(ConfigurationError, match="recovery_timeout_seconds must be a number"):
        CircuitBreakerSettings.coerce({"recovery_timeout_seconds": None})
    with pytest.raises(ConfigurationError, match="state_cache_seconds must be >= 0"):
        CircuitBreakerSettings.coerce({"state_cache_seconds": -1})
    with pytest.raises(ConfigurationError, match="circuit_breaker must be a mapping"):
        CircuitBreakerSettings.coerce(3)  # type: ignore[arg-type]
    settings = CircuitBreakerSettings.coerce(
        {"failure_threshold": 7, "providers": {"email": {"success_threshold": 4},
                                               "sms": CircuitBreakerConfig(failure_threshold=1)}})
    assert settings is not None
    assert settings.config_for("email") == CircuitBreakerConfig(7, 4)
    assert settings.config_for("sms") == CircuitBreakerConfig(1)
    assert settings.config_for("other") == CircuitBreakerConfig(7)
    assert settings.summary()["provider_overrides"] == ["email", "sms"]


# --------------------------------------------------------------------------- what counts


async def test_only_retryable_failures_count() -> None:
    email = FailingProvider("email", kind="non_retryable")
    async with gateway([email], {"failure_threshold": 1}) as gw:
        for _ in range(3):
            outcome = await gw.dispatch(make_action())
            assert isinstance(outcome, Failed) and not outcome.retryable
        assert (await gw.circuit_breakers() or [])[0]["state"] == "closed"
    for kind in ("rate_limited", "timeout"):
        failing = FailingProvider("email", kind=kind, hang_seconds=60)
        cfg = {"executor": {"max_retries": 0, "timeout_seconds": 0.01}}
        async with gateway([failing], {"failure_threshold": 1}, config=cfg) as gw:
            assert isinstance(await gw.dispatch(make_action()), Failed)
            assert (await gw.circuit_breakers() or [])[0]["state"] == "open", kind


async def test_executed_with_failure_status_is_a_success() -> None:
    provider = RecordingProvider("email", response=lambda a: ProviderResponse("failure", {"error": "x"}, {}))
    store = MemoryStateStore()
    async with gateway([provider], {"failure_threshold": 2}, state=store) as gw:
        breaker = gw._breakers["email"] if gw._breakers else None
        assert breaker is not None
        await breaker.record_failure()
        outcome = await gw.dispatch(make_action())
        assert isinstance(outcome, Executed) and outcome.response.status == "failure"
        assert (await breaker.data()).consecutive_failures == 0


async def test_non_retryable_probe_failure_frees_the_probe() -> None:
    email = FailingProvider("email", script=["non_retryable", "ok"])
    cfg = {"failure_threshold": 1, "success_threshold": 1, "recovery_timeout_seconds": 0}
    async with gateway([email], cfg) as gw:
        await gw.trip_circuit("email")
        outcome = await gw.dispatch(make_action())  # the probe: a client error
        assert isinstance(outcome, Failed) and not outcome.retryable
        # the next dispatch may probe at once (upstream would refuse it for 30 s)
        assert isinstance(await gw.dispatch(make_action()), Executed)
        assert (await gw.circuit_breakers() or [])[0]["state"] == "closed"


async def test_retries_happen_before_the_breaker_counts() -> None:
    email = FailingProvider("email", failures=2)
    config = {"executor": {"max_retries": 3, "retry": {"strategy": "constant", "base_ms": 1}}}
    async with gateway([email], {"failure_threshold": 1}, config=config) as gw:
        assert isinstance(await gw.dispatch(make_action()), Executed)
        assert (await gw.circuit_breakers() or [])[0]["state"] == "closed"


async def test_fallback_failure_counts_on_the_fallback() -> None:
    email, sms = FailingProvider("email"), FailingProvider("sms-fallback")
    cfg = {"failure_threshold": 1, "recovery_timeout_seconds": 3600,
           "providers": {"email": {"fallback_provider": "sms-fallback"}}}
    async with gateway([email, sms], cfg) as gw:
        await gw.trip_circuit("email")
        outcome = await gw.dispatch(make_action())
        assert isinstance(outcome, Failed)  # returned as is
        states = {s["provider"]: s["state"] for s in await gw.circuit_breakers() or []}
        assert states == {"email": "open", "sms-fallback": "open"}
        assert counters(gw, "circuit_fallbacks", "failed", "circuit_transitions") == {
            "circuit_fallbacks": 1, "failed": 0, "circuit_transitions": 1}
        assert await gw.dispatch(make_action()) == CircuitOpen("email", ["sms-fallback"])


async def test_fallback_without_breaker_and_unregistered_fallback() -> None:
    email, sms = FailingProvider("email"), RecordingProvider("sms-fallback")
    settings = CircuitBreakerSettings(providers={"email": CircuitBreakerConfig(1, fallback_provider="sms-fallback")})
    gw = gateway([email, sms], settings)
    assert gw._breakers is not None
    del gw._breakers["sms-fallback"]  # a fallback without a breaker is used as is
    async with gw:
        await gw.trip_circuit("email")
        assert isinstance(await gw.dispatch(make_action()), Rerouted)
        del gw._providers["sms-fallback"]  # listed, but not registered: the walk stops there
        assert await gw.dispatch(make_action()) == CircuitOpen("email", ["sms-fallback"])


async def test_half_open_fallback_runs_as_probe() -> None:
    email, sms = FailingProvider("email"), RecordingProvider("sms-fallback")
    cfg = {"failure_threshold": 1, "success_threshold": 1, "recovery_timeout_seconds": 3600,
           "providers": {"email": {"fallback_provider": "sms-fallback"},
                         "sms-fallback": {"recovery_timeout_seconds": 0}}}
    async with gateway([email, sms], cfg) as gw:
        await gw.trip_circuit("email")
        await gw.trip_circuit("sms-fallback")
        assert isinstance(await gw.dispatch(make_action()), Rerouted)
        states = {s["provider"]: s["state"] for s in await gw.circuit_breakers() or []}
        assert states == {"email": "open", "sms-fallback": "closed"}


# --------------------------------------------------------------------------- management, events


async def test_trip_and_reset_api() -> None:
    email = RecordingProvider("email")
    async with gateway([email], True) as gw:
        assert await gw.trip_circuit("email") == {
            "provider": "email", "state": "open", "message": "circuit breaker tripped"}
        assert await gw.dispatch(make_action()) == CircuitOpen("email", [])
        assert email.calls == 0
        assert await gw.reset_circuit("email") == {
            "provider": "email", "state": "closed", "message": "circuit breaker reset"}
        assert isinstance(await gw.dispatch(make_action()), Executed)
        with pytest.raises(CircuitBreakerNotFound, match="circuit breaker not found: nope"):
            await gw.trip_circuit("nope")
        with pytest.raises(LookupError):
            await gw.reset_circuit("nope")


async def test_transition_events() -> None:
    email = FailingProvider("email", failures=1)
    cfg = {"failure_threshold": 1, "success_threshold": 1, "recovery_timeout_seconds": 0}
    async with gateway([email], cfg) as gw:
        sub = gw.events(event_type="circuit_state_changed")
        await gw.dispatch(make_action())
        await gw.dispatch(make_action())
        await gw.trip_circuit("email")
        seen = []
        with anyio.fail_after(1):
            async for event in sub:
                seen.append(event)
                if len(seen) == 4:
                    break
        await sub.aclose()
        steps = [(e.data["from_state"], e.data["to_state"], e.data["manual"]) for e in seen]
        assert steps == [("closed", "open", False), ("open", "half_open", False),
                         ("half_open", "closed", False), ("closed", "open", True)]
        assert all(e.data["provider"] == "email" and e.namespace == "_system" for e in seen)


# --------------------------------------------------------------------------- sharing and restarts


async def test_two_gateways_share_one_breaker(shared_store: StateStore) -> None:
    clock = FakeClock()
    cfg = {"failure_threshold": 2, "recovery_timeout_seconds": 60, "state_cache_seconds": 1}
    a_email, b_email = FailingProvider("email"), RecordingProvider("email")
    gw_a = gateway([a_email], cfg, clock=clock, state=shared_store)
    gw_b = gateway([b_email], cfg, clock=clock, state=shared_store)
    async with gw_a, gw_b:
        assert isinstance(await gw_b.dispatch(make_action()), Executed)  # B now trusts Closed for 1 s
        await gw_a.dispatch(make_action())
        await gw_a.dispatch(make_action())  # A trips the shared breaker
        assert (await gw_b.circuit_breakers() or [])[0]["state"] == "open"
        # within its cache window B still sends (the documented staleness bound) ...
        assert isinstance(await gw_b.dispatch(make_action()), Executed)
        clock.advance(1)
        # ... and after it, B sees the open breaker
        assert await gw_b.dispatch(make_action()) == CircuitOpen("email", [])
        clock.advance(60)
        assert isinstance(await gw_b.dispatch(make_action()), Executed)  # B's probe: 1 of 2 successes
        assert (await gw_a.circuit_breakers() or [])[0]["state"] == "half_open"
        assert isinstance(await gw_b.dispatch(make_action()), Executed)
        assert (await gw_a.circuit_breakers() or [])[0]["state"] == "closed"


async def test_cache_off_sees_other_gateways_at_once(shared_store: StateStore) -> None:
    clock = FakeClock()
    cfg = {"state_cache_seconds": 0}
    gw_a = gateway([RecordingProvider("email")], cfg, clock=clock, state=shared_store)
    gw_b = gateway([RecordingProvider("email")], cfg, clock=clock, state=shared_store)
    async with gw_a, gw_b:
        assert isinstance(await gw_b.dispatch(make_action()), Executed)
        await gw_a.trip_circuit("email")
        assert await gw_b.dispatch(make_action()) == CircuitOpen("email", [])


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    from acteon.state.sqlite import SQLiteStateStore

    path = tmp_path / "state.db"
    clock = FakeClock()
    async with SQLiteStateStore(path) as store, gateway([FailingProvider("email")], {"failure_threshold": 1},
                                                        clock=clock, state=store) as gw:
        await gw.dispatch(make_action())
    async with SQLiteStateStore(path) as store:
        raw = await store.get(circuit_key("email"))
        assert raw is not None and '"state":"open"' in raw
        async with gateway([RecordingProvider("email")], {"failure_threshold": 1}, clock=clock, state=store) as gw:
            assert await gw.dispatch(make_action()) == CircuitOpen("email", [])


# --------------------------------------------------------------------------- config file and blocking twin


def test_config_file_section(tmp_path: Path) -> None:
    toml = tmp_path / "acteon.toml"
    toml.write_text(
        '[[providers]]\nname = "email"\ntype = "log"\n'
        '[[providers]]\nname = "sms"\ntype = "log"\n'
        "[circuit_breaker]\nenabled = true\nfailure_threshold = 3\nrecovery_timeout_seconds = 30\n"
        '[circuit_breaker.providers.email]\nfallback_provider = "sms"\nsuccess_threshold = 4\n'
    )
    with Gateway.from_config(toml) as gw:
        statuses = {s["provider"]: s for s in gw.circuit_breakers() or []}
        assert statuses["email"] == {"provider": "email", "state": "closed", "failure_threshold": 3,
                                     "success_threshold": 4, "recovery_timeout_seconds": 30,
                                     "fallback_provider": "sms"}
        assert gw.trip_circuit("email")["state"] == "open"
        outcome = gw.dispatch(make_action(provider="email"))
        assert isinstance(outcome, Rerouted) and outcome.new_provider == "sms"
        assert gw.reset_circuit("email")["state"] == "closed"
    # without `enabled = true` the section builds nothing (as the upstream server)
    toml.write_text('[[providers]]\nname = "email"\ntype = "log"\n[circuit_breaker]\nfailure_threshold = 3\n')
    with Gateway.from_config(toml) as gw:
        assert gw.circuit_breakers() is None
    toml.write_text('[circuit_breaker]\nenabled = true\nfailure_threshold = 0\n[[providers]]\nname = "e"\ntype = "log"\n')
    with pytest.raises(ConfigurationError, match="circuit breaker config for 'e': failure_threshold must be >= 1"):
        Gateway.from_config(toml)
