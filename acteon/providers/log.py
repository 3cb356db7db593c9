"""``log`` provider: writes the action to ``logging`` and never fails."""

from __future__ import annotations

import logging
from typing import Any

from acteon._action import Action
from acteon._response import ProviderResponse
from acteon.providers._base import Provider

_log = logging.getLogger("acteon.providers.log")


class LogProvider(Provider):
    """Logs each action; returns ``{"provider": name, "logged": true}``."""

    def __init__(self, name: str = "log", *, level: int = logging.INFO, **_: Any) -> None:
        self.name = name
        self._level = level
        self.inline = True

    async def execute(self, action: Action) -> ProviderResponse:
        if _log.isEnabledFor(self._level):
            _log.log(self._level, "action %s %s/%s %s", action.id, action.namespace, action.tenant,
                     action.action_type)
        return ProviderResponse("success", {"provider": self.name, "logged": True}, {})
