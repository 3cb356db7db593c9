"""Resilience: per-provider circuit breakers with fallbacks, provider health, weighted routing.

See docs/circuit-breakers.md, docs/provider-health.md and docs/routing.md.
"""

from acteon.resilience._feature import attach
from acteon.resilience.breaker import (
    PROBE_TIMEOUT_MS,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerNotFound,
    CircuitData,
    CircuitState,
    Transition,
    circuit_key,
)
from acteon.resilience.health import LATENCY_SAMPLES, ProviderHealthRegistry, ProviderStats
from acteon.resilience.routing import RouteConfigError, WeightedRouter, hash_point, parse_weighted_route
from acteon.resilience.settings import CircuitBreakerSettings, build_breakers

__all__ = [
    "LATENCY_SAMPLES",
    "PROBE_TIMEOUT_MS",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerNotFound",
    "CircuitBreakerSettings",
    "CircuitData",
    "CircuitState",
    "ProviderHealthRegistry",
    "ProviderStats",
    "RouteConfigError",
    "Transition",
    "WeightedRouter",
    "attach",
    "build_breakers",
    "circuit_key",
    "hash_point",
    "parse_weighted_route",
]
