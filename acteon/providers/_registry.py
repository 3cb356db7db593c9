"""Provider type names usable in config (``type = "webhook"``) and the entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.providers._base import Provider

ProviderFactory = Callable[..., Provider]

_BUILTIN: dict[str, str] = {
    "log": "acteon.providers.log:LogProvider",
    "webhook": "acteon.providers.webhook:WebhookProvider",
    "slack": "acteon.providers.slack:SlackProvider",
    "pagerduty": "acteon.providers.pagerduty:PagerDutyProvider",
    "teams": "acteon.providers.teams:TeamsProvider",
    "discord": "acteon.providers.discord:DiscordProvider",
    "twilio": "acteon.providers.twilio:TwilioProvider",
    "email": "acteon.providers.email:EmailProvider",
}
_registered: dict[str, ProviderFactory] = {}


def register_provider_type(type_name: str, factory: ProviderFactory) -> None:
    """Make ``type = "<type_name>"`` in config build providers with ``factory(name=..., **config)``."""
    _registered[type_name] = factory


def _load(target: str) -> ProviderFactory:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    factory: ProviderFactory = getattr(module, attr)
    return factory


def provider_factory(type_name: str) -> ProviderFactory:
    if type_name in _registered:
        return _registered[type_name]
    if type_name in _BUILTIN:
        return _load(_BUILTIN[type_name])
    for ep in entry_points(group="acteon.providers"):
        if ep.name == type_name:
            factory: ProviderFactory = ep.load()
            return factory
    known = sorted({*_BUILTIN, *_registered})
    raise ConfigurationError(f"unknown provider type {type_name!r}; known: {', '.join(known)}")


def build_provider(spec: dict[str, Any]) -> Provider:
    """Build one provider from a config table ``{name, type, ...options}``."""
    spec = dict(spec)
    name = spec.pop("name", None)
    type_name = spec.pop("type", None)
    if not name or not isinstance(name, str):
        raise ConfigurationError(f"provider entry {spec!r} needs a string 'name'")
    if not type_name or not isinstance(type_name, str):
        raise ConfigurationError(f"provider '{name}' needs a string 'type'")
    factory = provider_factory(type_name)
    try:
        return factory(name=name, **spec)
    except TypeError as exc:
        raise ConfigurationError(f"provider '{name}' (type {type_name}): {exc}") from exc
