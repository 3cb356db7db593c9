"""Hot reload of rule files (DECISIONS D10): a polling watcher run as a background job.

Enabled by ``AsyncGateway(..., watch_rules=True)`` or ``[rules] watch = true``.
On each ``tick`` the watcher fingerprints the files the gateway's rules came
from (``gateway._rules_source``: a directory, a file, or a list of them). When
the fingerprint changes it loads the files into a *fresh* rule set, off the
event loop, and swaps it in with one attribute assignment, so a dispatch sees
either the old set or the new one, never a mix. A load error keeps the old
set, is logged, kept in :attr:`RulesWatchMixin.rules_reload_error` and
published as a ``rules_reloaded``/``rules_reload_failed`` event.

Decision (upstream does not do this): a rule switched at run time
(``gw.enable_rule``/``gw.disable_rule``) to a state that differs from its
file keeps that state across hot reloads while a rule of that name exists,
so an operator's switch is not undone by an unrelated edit. Every other rule
takes the ``enabled`` value of its file (a rule switched back to its file's
value is no longer overridden).
Polling needs no extra dependency and works the same on every filesystem.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from acteon._events import StreamEvent
from acteon._exceptions import RuleLoadError
from acteon.rules._engine import RuleSet
from acteon.rules._sources import Fingerprint, describe_source, fingerprint, load_source

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.rules")

JOB_NAME = "rules_watch"


def _flags(rules: RuleSet) -> dict[str, bool]:
    """``enabled`` of the first rule of each name (the one enable/disable act on)."""
    flags: dict[str, bool] = {}
    for rule in rules.rules:
        flags.setdefault(rule.name, rule.enabled)
    return flags


class RulesWatcher:
    """The background job: detect changed rule files, reload atomically, report."""

    def __init__(self, gateway: AsyncGateway) -> None:
        self._gw = gateway
        self._source: Any = None
        self._fingerprint: Fingerprint | None = None
        # The set the watcher last installed (or adopted) and its files' enabled flags,
        # to tell run-time switches apart from what the files say.
        self._base: RuleSet | None = None
        self._base_flags: dict[str, bool] = {}
        self._warned_no_source = False
        self.last_error: str | None = None
        self.last_reload: datetime | None = None

    def prime(self) -> None:
        """Take the baseline fingerprint now (the rules were just loaded from these files)."""
        source = self._gw._rules_source
        if source is not None:
            self._source = source
            self._fingerprint = fingerprint(source)
        self._adopt(self._gw._rules)

    def _adopt(self, rules: RuleSet) -> None:
        self._base = rules
        self._base_flags = _flags(rules)

    async def __call__(self, now: datetime) -> int:
        gw = self._gw
        source = gw._rules_source
        if source is None:
            if not self._warned_no_source:
                self._warned_no_source = True
                _log.warning("watch_rules is on, but the rules were not loaded from a file or directory")
            return 0
        if gw._rules is not self._base:
            # Installed by the constructor or by reload_rules(): take its flags as the files' own.
            self._adopt(gw._rules)
        if self._fingerprint is None or source is not self._source:
            self._source = source
            self._fingerprint = fingerprint(source)
            return 0
        current = fingerprint(source, self._fingerprint)
        changed = not current.same_as(self._fingerprint)
        # Keep the newest scan even when unchanged: its time decides which files need hashing.
        self._fingerprint = current
        if not changed:
            return 0
        await self._reload(source, now)
        return 1

    async def _reload(self, source: Any, now: datetime) -> None:
        gw = self._gw
        where = describe_source(source)
        try:
            # Reading and compiling may take milliseconds: keep them off the event loop.
            new: RuleSet = await anyio.to_thread.run_sync(load_source, source)
        except (RuleLoadError, OSError, ValueError) as exc:
            message = str(exc)
            self.last_error = message
            gw._metrics.rules_reload_failed += 1
            _log.error("rules reload from %s failed, keeping the previous %d rules: %s",
                       where, len(gw._rules), message)
            gw._events.publish(StreamEvent(
                "rules_reload_failed", now,
                data={"source": where, "error": message, "rules": len(gw._rules)},
            ))
            return
        file_flags = _flags(new)
        current = _flags(gw._rules)
        for name, enabled in current.items():
            if name in self._base_flags and self._base_flags[name] != enabled and name in file_flags:
                if enabled:
                    new.enable_rule(name)
                else:
                    new.disable_rule(name)
        gw._rules = new  # the atomic swap
        self._base, self._base_flags = new, file_flags
        self.last_error = None
        self.last_reload = now
        gw._metrics.rules_reloaded += 1
        _log.info("rules reloaded from %s: %d rules", where, len(new))
        gw._events.publish(StreamEvent(
            "rules_reloaded", now,
            data={"source": where, "rules": len(new), "rules_version": new.rules_version(),
                  "warnings": list(new.warnings)},
        ))


class RulesWatchMixin:
    """Gateway accessors of the hot-reload watcher."""

    @property
    def rules_reload_error(self) -> str | None:
        """Why the last hot reload failed (the previous rules stay active), or ``None``.

        Cleared by the next successful reload. Always ``None`` without ``watch_rules``.
        """
        watcher: RulesWatcher | None = getattr(self, "_rules_watcher", None)
        return None if watcher is None else watcher.last_error


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the watcher job when ``watch_rules`` is on."""
    if not options.get("watch_rules"):
        return
    watcher = RulesWatcher(gateway)
    gateway._rules_watcher = watcher  # type: ignore[attr-defined]
    gateway._jobs[JOB_NAME] = watcher
    # ``from_config`` sets the source after construction and primes again then.
    watcher.prime()
