"""The per-evaluation context compiled closures read from.

One :class:`EvalContext` is built per ``evaluate`` call; it is cheap to build
(every derived value — the ``time`` map, the action as a map, timestamps — is
computed on first use and cached) and carries the answers of asynchronous
lookups. A closure that needs a state value, an embedding similarity or a
WASM verdict asks the context; when the answer is not cached and cannot be
obtained synchronously, the context raises :class:`Pending` and the driver
(``aevaluate``) awaits the lookup, caches it and re-runs the rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from acteon._action import Action
from acteon._timefmt import format_rfc3339
from acteon.rules._errors import EvalError, EvaluationError, Pending, StateAccessError
from acteon.rules._time import time_map
from acteon.rules._values import normalize

Lookup = Callable[[Action, datetime], Awaitable[Any]]
"""A named value the caller computes on demand (the gateway's ``budget``): awaited only by
rules that read the identifier, once per evaluation."""


class MockState:
    """A read-only overlay of state values (the playground's ``mock_state``, rules.md §10.4).

    A lookup is answered by an override whose key equals the canonical key
    (``ns:tenant:kind:id``) or just its id part; otherwise it falls through to
    ``fallback`` (any object with a sync or async ``get(key)``), or is absent.
    A plain ``dict`` passed as ``state=`` behaves like ``MockState(dict)``.
    """

    __slots__ = ("fallback", "overrides")

    def __init__(self, overrides: Mapping[str, str], fallback: Any = None) -> None:
        self.overrides = dict(overrides)
        self.fallback = fallback

    async def get(self, key: str) -> str | None:
        found = _override(self.overrides, key)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        if self.fallback is None:
            return None
        value = self.fallback.get(key)
        if inspect.isawaitable(value):
            value = await value
        return value  # type: ignore[no-any-return]


_MISSING = object()


def _override(overrides: Mapping[str, str], key: str) -> object:
    if key in overrides:
        return overrides[key]
    ident = key.split(":", 3)[-1]
    if ident in overrides:
        return overrides[ident]
    return _MISSING


class _Failed:
    """A cached failure of an asynchronous lookup (re-raised on every read)."""

    __slots__ = ("error",)

    def __init__(self, error: EvalError) -> None:
        self.error = error

    def fresh(self) -> EvalError:
        # A new instance per raise: the cached one must not collect tracebacks or annotations.
        return type(self.error)(self.error.detail)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class _Source:
    """How to read one state object: overrides, a sync getter, an async getter."""

    __slots__ = ("async_get", "obj", "overrides", "sync_get")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.overrides: Mapping[str, str] | None = None
        self.sync_get: Callable[[str], Any] | None = None
        self.async_get: Callable[[str], Any] | None = None
        store = obj
        if isinstance(obj, Mapping):
            self.overrides = obj
            store = None
        elif isinstance(obj, MockState):
            self.overrides = obj.overrides
            store = obj.fallback
        if store is not None:
            get = store.get
            if _is_async(get):
                self.async_get = get
            else:
                self.sync_get = get


_LAST_SOURCE: list[_Source] = [_Source(None)]


def _source_for(obj: Any) -> _Source:
    # The gateway passes the same store on every call: remember the last classification.
    last = _LAST_SOURCE[0]
    if last.obj is obj:
        return last
    src = _Source(obj)
    _LAST_SOURCE[0] = src
    return src


class EvalContext:
    """Everything a compiled condition can read during one evaluation."""

    __slots__ = (
        "_amap",
        "_now",
        "_times",
        "action",
        "cache",
        "default_zone",
        "embedding",
        "env",
        "env_keys",
        "lookups",
        "semantic",
        "source",
        "state_keys",
        "wasm",
        "zone",
    )

    def __init__(
        self,
        action: Action,
        now: datetime | None = None,
        state: Any = None,
        env: Mapping[str, str] | None = None,
        zone: tzinfo | None = None,
        embedding: Any = None,
        wasm: Any = None,
        tracing: bool = False,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> None:
        self.action = action
        self.lookups = lookups
        self._now = now
        self.env = env if env is not None else {}
        self.default_zone = zone
        self.zone = zone
        source = _LAST_SOURCE[0]
        self.source = source if source.obj is state else _source_for(state)
        self.embedding = embedding
        self.wasm = wasm
        self.cache: dict[Any, Any] = {}
        self._times: dict[Any, dict[str, Any]] | None = None
        self._amap: dict[str, Any] | None = None
        if tracing:
            self.env_keys: set[str] | None = set()
            self.state_keys: set[str] | None = set()
            self.semantic: dict[str, Any] | None = None
        else:
            self.env_keys = None
            self.state_keys = None
            self.semantic = None

    # ------------------------------------------------------------------ clock and time

    @property
    def now(self) -> datetime:
        now = self._now
        if now is None:
            now = self._now = datetime.now(UTC)
        return now

    def time_value(self) -> dict[str, Any]:
        """The ``time`` map for the effective timezone of the rule being evaluated."""
        times = self._times
        if times is None:
            times = self._times = {}
        zone = self.zone
        value = times.get(zone)
        if value is None:
            value = times[zone] = time_map(self.now, zone)
        return value

    def context_time(self) -> dict[str, Any]:
        """The ``time`` map of the context (default) timezone, as traces report it."""
        saved = self.zone
        self.zone = self.default_zone
        try:
            return dict(self.time_value())
        finally:
            self.zone = saved

    # ------------------------------------------------------------------ action

    def action_map(self) -> dict[str, Any]:
        """The action serialised as the ``action`` map of rules.md §8.1 (cached)."""
        amap = self._amap
        if amap is None:
            action = self.action
            amap = action.to_wire()
            amap["payload"] = normalize(amap["payload"])
            amap.setdefault("template", getattr(action, "template", None))
            self._amap = amap
        return amap

    def action_attr(self, name: str) -> Any:
        """``action.<name>`` without building the whole map."""
        value = getattr(self.action, name, None)
        if isinstance(value, datetime):
            return format_rfc3339(value)
        return normalize(value)

    # ------------------------------------------------------------------ state

    def state_get(self, kind: str, ident: str) -> str | None:
        """Raw value of ``<ns>:<tenant>:<kind>:<ident>`` (``None`` when absent)."""
        action = self.action
        key = f"{action.namespace}:{action.tenant}:{kind}:{ident}"
        cache = self.cache
        if key in cache:
            value = cache[key]
            if type(value) is _Failed:
                raise value.fresh()
            return value  # type: ignore[no-any-return]
        src = self.source
        if src.overrides is not None:
            found = _override(src.overrides, key)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        if src.sync_get is not None:
            try:
                value = src.sync_get(key)
            except EvalError:
                raise
            except Exception as exc:
                raise StateAccessError(str(exc)) from exc
            if inspect.isawaitable(value):
                raise Pending(("state", key), value)
            cache[key] = value
            return value  # type: ignore[no-any-return]
        if src.async_get is not None:
            raise Pending(("state", key))
        return None

    # ------------------------------------------------------------------ named lookups

    def lookup(self, name: str) -> Any:
        """Value of the caller-provided lookup ``name`` (asked for once, then cached)."""
        req = ("lookup", name)
        cache = self.cache
        if req in cache:
            value = cache[req]
            if type(value) is _Failed:
                raise value.fresh()
            return value
        raise Pending(req)

    # ------------------------------------------------------------------ embedding and wasm

    def similarity(self, text: str, topic: str) -> float:
        req = ("similarity", text, topic)
        cache = self.cache
        if req in cache:
            value = cache[req]
            if type(value) is _Failed:
                raise value.fresh()
            return value  # type: ignore[no-any-return]
        fn = self.embedding.similarity
        if _is_async(fn):
            raise Pending(req)
        try:
            value = fn(text, topic)
        except EvalError:
            raise
        except Exception as exc:
            raise EvaluationError(f"semantic_match failed: {exc}") from exc
        if inspect.isawaitable(value):
            raise Pending(req, value)
        result = float(value)
        cache[req] = result
        return result

    def wasm_call(self, plugin: str, function: str) -> bool:
        req = ("wasm", plugin, function)
        cache = self.cache
        if req in cache:
            value = cache[req]
            if type(value) is _Failed:
                raise value.fresh()
            return value  # type: ignore[no-any-return]
        fn = self.wasm.invoke
        if _is_async(fn):
            raise Pending(req)
        try:
            value = fn(plugin, function, self.action.to_wire())
        except EvalError:
            raise
        except Exception as exc:
            raise EvaluationError(f"WASM plugin '{plugin}' error: {exc}") from exc
        if inspect.isawaitable(value):
            raise Pending(req, value)
        verdict = bool(value)
        cache[req] = verdict
        return verdict

    # ------------------------------------------------------------------ async resolution

    async def resolve(self, pending: Pending) -> None:
        """Await the lookup ``pending`` stands for and cache its answer (or failure)."""
        req = pending.request
        kind = req[0]
        try:
            if pending.awaitable is not None:
                value = await pending.awaitable
            elif kind == "state":
                get = self.source.async_get
                assert get is not None
                value = await get(req[1])
            elif kind == "similarity":
                value = await self.embedding.similarity(req[1], req[2])
            elif kind == "lookup":
                assert self.lookups is not None
                value = normalize(await self.lookups[req[1]](self.action, self.now))
            else:
                value = await self.wasm.invoke(req[1], req[2], self.action.to_wire())
        except EvalError as exc:
            value = _Failed(exc)
        except Exception as exc:
            if kind == "state":
                value = _Failed(StateAccessError(str(exc)))
            elif kind == "similarity":
                value = _Failed(EvaluationError(f"semantic_match failed: {exc}"))
            elif kind == "lookup":
                value = _Failed(EvaluationError(f"'{req[1]}' lookup failed: {exc}"))
            else:
                value = _Failed(EvaluationError(f"WASM plugin '{req[1]}' error: {exc}"))
        else:
            if kind == "similarity":
                value = float(value)
            elif kind == "wasm":
                value = bool(value)
        self.cache[req[1] if kind == "state" else req] = value


def discard(pending: Pending) -> None:
    """Close an awaitable a sync driver will not await (avoids 'never awaited' warnings)."""
    aw = pending.awaitable
    close = getattr(aw, "close", None)
    if close is not None:
        close()
