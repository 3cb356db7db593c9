"""Providers: the plug-ins that execute actions."""

from acteon._response import ProviderResponse
from acteon.providers._base import FunctionProvider, Provider, as_response, provider
from acteon.providers._registry import build_provider, provider_factory, register_provider_type
from acteon.providers.log import LogProvider

__all__ = [
    "FunctionProvider",
    "LogProvider",
    "Provider",
    "ProviderResponse",
    "WebhookProvider",
    "as_response",
    "build_provider",
    "provider",
    "provider_factory",
    "register_provider_type",
]


def __getattr__(name: str) -> object:
    if name == "WebhookProvider":
        from acteon.providers.webhook import WebhookProvider

        return WebhookProvider
    raise AttributeError(name)
