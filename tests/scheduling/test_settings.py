"""Scheduling settings: constructor argument and config-file sections."""

from __future__ import annotations

import pytest

from acteon import AsyncGateway, ConfigurationError, Gateway
from acteon.scheduling import SchedulingConfig


def test_defaults() -> None:
    cfg = SchedulingConfig()
    assert (cfg.min_interval_seconds, cfg.max_recurring_per_tenant, cfg.max_delivery_attempts) == (60, 100, 5)
    assert [cfg.backoff(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert SchedulingConfig(retry_backoff_seconds=1000).backoff(5) == 3600.0


def test_config_file_sections() -> None:
    gw = AsyncGateway.from_config({
        "background": {"max_recurring_actions_per_tenant": 7},
        "scheduling": {"claim_ttl_seconds": 90, "min_interval_seconds": 300},
    })
    assert gw._scheduling is not None
    cfg = gw._scheduling.config
    assert (cfg.max_recurring_per_tenant, cfg.claim_ttl_seconds, cfg.min_interval_seconds) == (7, 90.0, 300)


@pytest.mark.parametrize("bad", [{"bogus": 1}, {"max_delivery_attempts": 0}, {"claim_ttl_seconds": -1}])
def test_bad_settings_name_the_problem(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="invalid scheduling settings"):
        AsyncGateway(scheduling=bad)
    with pytest.raises(ConfigurationError, match="invalid scheduling settings"):
        Gateway.from_config({"scheduling": bad})
    with pytest.raises(ConfigurationError, match=r"\[scheduling\] must be a table"):
        AsyncGateway.from_config({"scheduling": 5})
