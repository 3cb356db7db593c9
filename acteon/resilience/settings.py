"""``CircuitBreakerSettings``: the ``circuit_breaker=`` gateway option and ``[circuit_breaker]`` section.

Same shape as the server's TOML (server-api.md §5)::

    [circuit_breaker]
    enabled = true
    failure_threshold = 5
    success_threshold = 2
    recovery_timeout_seconds = 60
    state_cache_seconds = 1.0          # acteon: how long a Closed view is trusted
    [circuit_breaker.providers.email]
    failure_threshold = 10
    fallback_provider = "webhook"

Per-provider values are laid over the section's defaults. Breakers are built
for the providers registered when the gateway is constructed, with the
validation of core-pipeline.md §4 (same messages).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from acteon._clock import Clock
from acteon._exceptions import ConfigurationError
from acteon.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from acteon.state._base import StateStore

_log = logging.getLogger("acteon.resilience")

_THRESHOLDS = ("failure_threshold", "success_threshold")
_SECTION_KEYS = frozenset({"enabled", *_THRESHOLDS, "recovery_timeout_seconds", "state_cache_seconds", "providers"})
_PROVIDER_KEYS = frozenset({*_THRESHOLDS, "recovery_timeout_seconds", "fallback_provider"})


@dataclass(slots=True)
class CircuitBreakerSettings:
    """Breaker defaults, per-provider overrides and the cache window (see module docs).

    ``enabled`` defaults to true here: passing settings to the gateway asks for
    breakers. (A config *file* section without ``enabled`` stays off, as upstream.)
    """

    enabled: bool = True
    default: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    providers: dict[str, CircuitBreakerConfig] = field(default_factory=dict)
    state_cache_seconds: float = 1.0

    @classmethod
    def coerce(cls, value: CircuitBreakerSettings | Mapping[str, Any] | bool | None) -> CircuitBreakerSettings | None:
        """Settings from the gateway option; ``None``/``False`` mean "no breakers"."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, CircuitBreakerSettings):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        raise ConfigurationError(
            f"circuit_breaker must be a mapping, CircuitBreakerSettings or bool, got {type(value).__name__}"
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "[circuit_breaker]") -> CircuitBreakerSettings:
        """Parse the TOML shape; errors name the section and key."""
        unknown = sorted(set(data) - _SECTION_KEYS)
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {', '.join(unknown)}")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"{where}: enabled must be true or false, got {enabled!r}")
        default = _overlay(CircuitBreakerConfig(), data, where, allow_fallback=False)
        cache = _number(data, "state_cache_seconds", where, 1.0)
        if cache < 0:
            raise ConfigurationError(f"{where}: state_cache_seconds must be >= 0")
        providers: dict[str, CircuitBreakerConfig] = {}
        raw_providers = data.get("providers") or {}
        if not isinstance(raw_providers, Mapping):
            raise ConfigurationError(f"{where}: providers must be a table of provider name -> settings")
        for name, spec in raw_providers.items():
            section = f"[circuit_breaker.providers.{name}]"
            if isinstance(spec, CircuitBreakerConfig):
                providers[str(name)] = spec
                continue
            if not isinstance(spec, Mapping):
                raise ConfigurationError(f"{section} must be a table")
            extra = sorted(set(spec) - _PROVIDER_KEYS)
            if extra:
                raise ConfigurationError(f"{section}: unknown key(s) {', '.join(extra)}")
            providers[str(name)] = _overlay(default, spec, section, allow_fallback=True)
        return cls(enabled, default, providers, cache)

    def config_for(self, provider: str) -> CircuitBreakerConfig:
        return self.providers.get(provider, self.default)

    def summary(self) -> dict[str, Any]:
        """The ``circuit_breaker`` entry of the admin config view (server-api.md)."""
        return {
            "enabled": self.enabled,
            "failure_threshold": self.default.failure_threshold,
            "success_threshold": self.default.success_threshold,
            "recovery_timeout_seconds": self.default.recovery_timeout_seconds,
            "provider_overrides": sorted(self.providers),
        }


def _number(data: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _overlay(
    base: CircuitBreakerConfig, data: Mapping[str, Any], where: str, *, allow_fallback: bool
) -> CircuitBreakerConfig:
    changes: dict[str, Any] = {}
    for key in _THRESHOLDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{where}: {key} must be an integer, got {value!r}")
            changes[key] = value
    if "recovery_timeout_seconds" in data:
        changes["recovery_timeout_seconds"] = _number(data, "recovery_timeout_seconds", where, 60.0)
    if allow_fallback and data.get("fallback_provider") is not None:
        fallback = data["fallback_provider"]
        if not isinstance(fallback, str) or not fallback:
            raise ConfigurationError(f"{where}: fallback_provider must be a provider name, got {fallback!r}")
        changes["fallback_provider"] = fallback
    return replace(base, **changes)


def build_breakers(
    settings: CircuitBreakerSettings, providers: Mapping[str, Any], store: StateStore, clock: Clock
) -> dict[str, CircuitBreaker]:
    """One breaker per registered provider, validated as the upstream builder does (§4)."""
    names = sorted(providers)
    for name in sorted(set(settings.providers) - set(names)):
        _log.warning("[circuit_breaker.providers.%s] names no registered provider; ignored", name)
    breakers: dict[str, CircuitBreaker] = {}
    for name in names:
        config = settings.config_for(name)
        try:
            config.validate()
        except ConfigurationError as exc:
            raise ConfigurationError(f"circuit breaker config for '{name}': {exc.detail}") from None
        fallback = config.fallback_provider
        if fallback is not None:
            if fallback == name:
                raise ConfigurationError(f"circuit breaker for '{name}' has self-referencing fallback")
            if fallback not in providers:
                raise ConfigurationError(
                    f"circuit breaker for '{name}' references unknown fallback provider '{fallback}'"
                )
        breakers[name] = CircuitBreaker(
            name, config, store=store, clock=clock, state_cache_seconds=settings.state_cache_seconds
        )
    fallback_of = {n: b.config.fallback_provider for n, b in breakers.items() if b.config.fallback_provider}
    for start in sorted(fallback_of):
        seen = {start}
        current = start
        while current in fallback_of:
            nxt = fallback_of[current]
            if nxt in seen:
                raise ConfigurationError(f"circuit breaker fallback chain contains a cycle: {start} → … → {nxt} → …")
            seen.add(nxt)
            current = nxt
    return breakers
