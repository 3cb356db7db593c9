"""Weighted (canary) routing: a rule action that splits traffic across providers.

::

    - name: canary-sms
      condition: {field: action.action_type, eq: send_sms}
      action:
        type: weighted_route
        strategy: hash            # default; or "random"
        targets:
          - {provider: sms-old, weight: 90}
          - {provider: sms-new, weight: 10}

``hash`` picks from a hash of the action id, so one action id always lands on
the same provider (a retried or replayed action is not split) and the split is
stable while the weights stay the same; ``random`` draws per dispatch. The
targets are laid on a line in the order listed, so raising the first target's
weight only moves ids onto it, never away from it.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

STRATEGIES = ("hash", "random")
_TARGET_KEYS = frozenset({"provider", "weight"})


class RouteConfigError(ValueError):
    """A bad ``weighted_route`` action; ``key`` says where (``targets[1].weight``)."""

    def __init__(self, detail: str, key: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key


def parse_weighted_route(values: Mapping[str, Any], warn: list[tuple[str, str]]) -> dict[str, Any]:
    """Validate the parameters of a ``weighted_route`` action given as plain values.

    Returns ``{"targets": [{"provider", "weight"}, ...], "strategy": ...}``;
    unknown keys inside a target are appended to ``warn`` as ``(key, text)``.
    """
    if "targets" not in values:
        raise RouteConfigError("missing field `targets`", "targets")
    raw = values["targets"]
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
        raise RouteConfigError("targets must be a non-empty list of {provider, weight}", "targets")
    targets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"targets[{i}]"
        if not isinstance(item, Mapping):
            raise RouteConfigError(f"{where} must be a mapping with `provider` and `weight`", where)
        for key in item:
            if key not in _TARGET_KEYS:
                warn.append((f"{where}.{key}", f"unknown key '{key}' in a weighted_route target (ignored)"))
        provider = item.get("provider")
        if not isinstance(provider, str) or not provider:
            raise RouteConfigError(f"{where}.provider must be a provider name, got {provider!r}", f"{where}.provider")
        if provider in seen:
            raise RouteConfigError(f"{where}.provider '{provider}' is listed twice", f"{where}.provider")
        seen.add(provider)
        if "weight" not in item:
            raise RouteConfigError(f"{where}: missing field `weight`", f"{where}.weight")
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0 or weight == float("inf"):
            raise RouteConfigError(f"{where}.weight must be a finite number >= 0, got {weight!r}", f"{where}.weight")
        targets.append({"provider": provider, "weight": weight})
    if sum(t["weight"] for t in targets) <= 0:
        raise RouteConfigError("the target weights add up to 0; at least one must be > 0", "targets")
    strategy = values.get("strategy")
    if strategy is None:
        strategy = "hash"
    if strategy not in STRATEGIES:
        raise RouteConfigError(f"unknown strategy {strategy!r}, expected one of 'hash', 'random'", "strategy")
    return {"targets": targets, "strategy": strategy}


def hash_point(action_id: str) -> float:
    """A stable, uniform point in ``[0, 1)`` for an action id (53 bits of BLAKE2b)."""
    digest = hashlib.blake2b(action_id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 9007199254740992.0  # 2**53


class WeightedRouter:
    """A compiled ``weighted_route``: picks a provider for an action id."""

    __slots__ = ("_bounds", "_last", "providers", "strategy", "total")

    def __init__(self, targets: Sequence[Mapping[str, Any]], strategy: str = "hash") -> None:
        parsed = parse_weighted_route({"targets": targets, "strategy": strategy}, [])
        self.strategy: str = parsed["strategy"]
        self.providers: list[str] = [t["provider"] for t in parsed["targets"]]
        bounds: list[float] = []
        running = 0.0
        last = 0
        for i, t in enumerate(parsed["targets"]):
            running += float(t["weight"])
            bounds.append(running)
            if t["weight"] > 0:
                last = i
        self._bounds = bounds
        self._last = last
        self.total = running

    def pick(self, action_id: str, rng: random.Random | None = None) -> str:
        """The chosen provider: by hash of ``action_id``, or a random draw from ``rng``."""
        point = hash_point(action_id) if self.strategy == "hash" else (rng or random).random()
        index = bisect.bisect_right(self._bounds, point * self.total)
        # Rounding can put the point on the very end of the line: give it to the last real target.
        return self.providers[index if index <= self._last else self._last]

    def share(self, provider: str) -> float:
        """The configured fraction of traffic for ``provider`` (0 if it is not a target)."""
        try:
            i = self.providers.index(provider)
        except ValueError:
            return 0.0
        low = self._bounds[i - 1] if i else 0.0
        return (self._bounds[i] - low) / self.total


class RouterCache:
    """Compiled routers of the verdicts seen so far (a verdict's targets list is reused per rule)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, WeightedRouter]] = {}

    def get(self, targets: Any, strategy: Any) -> WeightedRouter:
        entry = self._entries.get(id(targets))
        # The entry keeps its targets object alive, so an equal id means the same object.
        if entry is not None and entry[0] is targets and entry[1].strategy == (strategy or "hash"):
            return entry[1]
        router = WeightedRouter(targets or [], strategy or "hash")
        if len(self._entries) >= 256:  # rule reloads leave old verdicts behind
            self._entries.clear()
        self._entries[id(targets)] = (targets, router)
        return router
