"""``attach``: wires circuit breakers and weighted routing into a gateway (see ``acteon._features``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from acteon.resilience.routing import RouterCache
from acteon.resilience.settings import CircuitBreakerSettings, build_breakers

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Build the breakers of the ``circuit_breaker`` option (validated now, as upstream's
    builder does) and register the ``weighted_route`` verdict and its dry-run answer."""
    settings = CircuitBreakerSettings.coerce(options.get("circuit_breaker"))
    if settings is not None and settings.enabled:
        gateway._breakers = build_breakers(settings, gateway._providers, gateway._state, gateway._clock)
    gateway._routers = RouterCache()
    gateway._route_rng = random.Random()
    gateway._verdict_handlers["weighted_route"] = gateway._handle_weighted_route
    gateway._dry_run_providers["weighted_route"] = gateway._dry_run_weighted_route
