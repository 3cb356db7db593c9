"""Rules, rule actions, rule sources and verdicts (rules.md §2, §4.8, §9.3).

Verdict kinds are plain strings, not a closed enum, so features can add kinds
(weighted routing, ...) without touching the engine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from acteon.rules import ir
from acteon.rules._values import debug_str

# Parameters of each upstream action kind, in the upstream field order.
ACTION_PARAMS: dict[str, tuple[str, ...]] = {
    "allow": (),
    "deny": (),
    "suppress": (),
    "deduplicate": ("ttl_seconds",),
    "reroute": ("target_provider",),
    "throttle": ("max_count", "window_seconds"),
    "modify": ("changes",),
    "state_machine": ("state_machine", "fingerprint_fields"),
    "group": (
        "group_by",
        "group_wait_seconds",
        "group_interval_seconds",
        "repeat_interval_seconds",
        "max_group_size",
        "template",
    ),
    "request_approval": ("notify_provider", "timeout_seconds", "message"),
    "chain": ("chain",),
    "schedule": ("delay_seconds",),
}


class RuleSource:
    """Where a rule came from; ``str()`` is the Rust debug form used in traces."""

    __slots__ = ("file", "kind", "plugin")

    def __init__(self, kind: str = "Inline", *, file: str | None = None, plugin: str | None = None) -> None:
        self.kind = kind
        self.file = file
        self.plugin = plugin

    @classmethod
    def yaml(cls, file: str | None = None) -> RuleSource:
        return cls("Yaml", file=file)

    @classmethod
    def inline(cls) -> RuleSource:
        return cls("Inline")

    @classmethod
    def api(cls) -> RuleSource:
        return cls("Api")

    @classmethod
    def wasm(cls, plugin: str | None = None) -> RuleSource:
        return cls("Wasm", plugin=plugin)

    def __str__(self) -> str:
        if self.kind == "Yaml":
            return "Yaml { file: " + ("None" if self.file is None else f"Some({debug_str(self.file)})") + " }"
        if self.kind == "Wasm":
            inner = "None" if self.plugin is None else f"Some({debug_str(self.plugin)})"
            return "Wasm { plugin: " + inner + " }"
        return self.kind

    def __repr__(self) -> str:
        return f"RuleSource({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSource) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class RuleAction:
    """What a rule does when it matches: a kind tag plus its parameters.

    ``RuleAction("throttle", max_count=10, window_seconds=60)``. The kind
    ``custom`` (``name`` + ``params``) exists for programmatic rules and yields
    an ``allow`` verdict, as upstream.
    """

    __slots__ = ("kind", "params")

    def __init__(self, kind: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.kind = kind
        merged = dict(params or {})
        merged.update(kwargs)
        self.params: dict[str, Any] = merged

    def __getattr__(self, name: str) -> Any:
        try:
            return self.params[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleAction) and (self.kind, self.params) == (other.kind, other.params)

    def __hash__(self) -> int:
        return hash(self.kind)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"RuleAction({self.kind!r}{args})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **copy.deepcopy(self.params)}


class Verdict:
    """The decision of a rule set for one action.

    ``kind`` is the tag (``allow``, ``deny``, ``throttle``, ...), ``rule`` the
    matched rule's name (``None`` for the no-match default; set for
    ``deduplicate`` too), and the parameters are attributes (``max_count``,
    ``target_provider``, ...; ``None`` when a kind does not have them).
    Verdicts are shared between evaluations: treat them (and ``changes``) as
    read-only.
    """

    __slots__ = (
        "_params",
        "chain",
        "changes",
        "delay_seconds",
        "fingerprint_fields",
        "group_by",
        "group_interval_seconds",
        "group_wait_seconds",
        "kind",
        "max_count",
        "max_group_size",
        "message",
        "notify_provider",
        "repeat_interval_seconds",
        "rule",
        "state_machine",
        "target_provider",
        "template",
        "timeout_seconds",
        "ttl_seconds",
        "window_seconds",
    )

    _KNOWN: ClassVar[frozenset[str]] = frozenset(name for names in ACTION_PARAMS.values() for name in names)

    kind: str
    rule: str | None

    def __init__(self, kind: str, rule: str | None = None, params: Mapping[str, Any] | None = None) -> None:
        self.kind = kind
        self.rule = rule
        self._params: dict[str, Any] = dict(params or {})
        for name in self._KNOWN:
            object.__setattr__(self, name, self._params.get(name))

    def __getattr__(self, name: str) -> Any:
        # Parameters of verdict kinds added later live in the mapping only.
        params = object.__getattribute__(self, "_params")
        if name in params:
            return params[name]
        raise AttributeError(name)

    @classmethod
    def allow(cls, rule: str | None = None) -> Verdict:
        return cls("allow", rule)

    @property
    def params(self) -> dict[str, Any]:
        """The kind's parameters (a copy)."""
        return dict(self._params)

    def to_dict(self) -> dict[str, Any]:
        """``{"verdict": kind, "rule": name, **params}``."""
        return {"verdict": self.kind, "rule": self.rule, **copy.deepcopy(self._params)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.kind, self.rule, self._params) == (other.kind, other.rule, other._params)

    def __hash__(self) -> int:
        return hash((self.kind, self.rule))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self._params.items())
        return f"Verdict({self.kind!r}, rule={self.rule!r}{args})"


ALLOW = Verdict.allow()


class Rule:
    """One rule: a condition (IR) and the action taken when it is truthy.

    Build from a frontend (:func:`acteon.rules.load_rules`) or directly::

        Rule("big-refund", ir.Binary(ir.BinaryOp.GT, ir.path("action.payload.amount"), ir.Int(1000)),
             RuleAction("deny"), priority=1)
    """

    __slots__ = (
        "_fn",
        "action",
        "active_time_intervals",
        "condition",
        "description",
        "enabled",
        "metadata",
        "mute_time_intervals",
        "name",
        "priority",
        "source",
        "timezone",
        "version",
    )

    def __init__(
        self,
        name: str,
        condition: ir.Expr,
        action: RuleAction,
        *,
        priority: int = 0,
        description: str | None = None,
        enabled: bool = True,
        source: RuleSource | None = None,
        version: int = 0,
        metadata: Mapping[str, str] | None = None,
        timezone: str | None = None,
        mute_time_intervals: Iterable[str] = (),
        active_time_intervals: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.condition = condition
        self.action = action
        self.priority = priority
        self.description = description
        self.enabled = enabled
        self.source = source if source is not None else RuleSource.inline()
        self.version = version
        self.metadata = dict(metadata or {})
        self.timezone = timezone
        self.mute_time_intervals = list(mute_time_intervals)
        self.active_time_intervals = list(active_time_intervals)
        self._fn: ir.Evaluator | None = None

    def compiled(self) -> ir.Evaluator:
        """The condition as a closure (compiled on first use, then cached)."""
        fn = self._fn
        if fn is None:
            from acteon.rules._compile import compile_condition

            fn = self._fn = compile_condition(self.condition)
        return fn

    def copy(self) -> Rule:
        """A shallow copy (shares the condition and its compiled closure)."""
        other = Rule.__new__(Rule)
        for name in Rule.__slots__:
            object.__setattr__(other, name, getattr(self, name))
        other.metadata = dict(self.metadata)
        return other

    def verdict(self) -> Verdict:
        """The verdict this rule yields when it matches."""
        kind = self.action.kind
        if kind == "custom":
            return Verdict("allow", self.name)
        return Verdict(kind, self.name, self.action.params)

    def to_source(self) -> str:
        return self.condition.to_source()

    def __repr__(self) -> str:
        return (
            f"Rule({self.name!r}, priority={self.priority}, enabled={self.enabled}, "
            f"action={self.action.kind!r}, condition={self.condition.to_source()!r})"
        )
