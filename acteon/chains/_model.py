"""Chain definitions: the model and its parsing from config dicts.

A definition arrives as a dict in the ``[[chains.definitions]]`` shape
(workflows.md §3.1, §4.1-§4.5). Parsing rejects wrong types, unknown keys and
unknown enum strings at once, naming the chain, the step and the key (upstream
silently maps unknown strings to ``abort``/``eq``); ``acteon.chains._validate``
then checks the structure with upstream's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acteon._exceptions import ChainError, ConfigurationError
from acteon._timefmt import coerce_datetime, format_rfc3339

STEP_POLICIES = ("abort", "skip", "dlq")
CHAIN_POLICIES = ("abort", "abort_no_dlq")
OPERATORS = ("eq", "neq", "contains", "exists", "gt", "lt", "gte", "lte")
JOIN_POLICIES = ("all", "any")
PARALLEL_POLICIES = ("fail_fast", "best_effort")
RETRY_STRATEGIES = ("fixed", "linear", "exponential")
DEFAULT_PARALLEL_TIMEOUT = 300.0


class ChainConfigError(ChainError, ConfigurationError):
    """An invalid chain definition. ``str()`` reads ``chain error: ...`` as upstream's
    start-time error does; it is also a :class:`~acteon.ConfigurationError`."""

    def __init__(self, message: str) -> None:
        self.detail = message
        Exception.__init__(self, f"chain error: {message}")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class BranchCondition:
    field: str
    operator: str
    target: str
    value: Any = None
    has_value: bool = False
    """``value`` was given (a JSON ``null`` counts: it matches null, DECISIONS D18)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "operator": self.operator}
        if self.has_value:
            out["value"] = self.value
        out["target"] = self.target
        return out


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    backoff_ms: int = 1000
    strategy: str = "fixed"
    jitter_ms: int | None = None

    def base_delay_ms(self, attempt: int) -> int:
        """Delay before the retry that follows 1-based ``attempt`` (jitter excluded)."""
        if self.strategy == "linear":
            return self.backoff_ms * attempt
        if self.strategy == "exponential":
            return int(self.backoff_ms * 2 ** min(attempt - 1, 40))
        return self.backoff_ms

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_retries": self.max_retries, "backoff_ms": self.backoff_ms,
                               "strategy": self.strategy}
        if self.jitter_ms is not None:
            out["jitter_ms"] = self.jitter_ms
        return out


@dataclass(frozen=True, slots=True)
class TimerConfig:
    duration_seconds: float | None = None
    until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.until is not None:
            return {"until": format_rfc3339(self.until)}
        return {"duration_seconds": self.duration_seconds}


@dataclass(frozen=True, slots=True)
class SignalConfig:
    signal_name: str
    timeout_seconds: float | None = None
    on_timeout: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal_name": self.signal_name}
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.on_timeout is not None:
            out["on_timeout"] = self.on_timeout
        return out


@dataclass(frozen=True, slots=True)
class ParallelConfig:
    steps: tuple[ChainStepConfig, ...]
    join: str = "all"
    on_failure: str = "fail_fast"
    timeout_seconds: float | None = None
    max_concurrency: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": [s.to_dict() for s in self.steps], "join": self.join,
                               "on_failure": self.on_failure}
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.max_concurrency is not None:
            out["max_concurrency"] = self.max_concurrency
        return out


@dataclass(frozen=True, slots=True)
class ChainStepConfig:
    name: str
    provider: str = ""
    action_type: str = ""
    payload_template: Any = field(default_factory=dict)
    on_failure: str | None = None
    delay_seconds: float | None = None
    branches: tuple[BranchCondition, ...] = ()
    default_next: str | None = None
    sub_chain: str | None = None
    parallel: ParallelConfig | None = None
    timer: TimerConfig | None = None
    wait_for_signal: SignalConfig | None = None
    worker: Any = None
    retry: RetryPolicy | None = None

    @property
    def kind(self) -> str:
        """``timer``, ``wait_for_signal``, ``worker``, ``sub_chain``, ``parallel`` or ``provider``
        (first set field in upstream's precedence)."""
        if self.timer is not None:
            return "timer"
        if self.wait_for_signal is not None:
            return "wait_for_signal"
        if self.worker is not None:
            return "worker"
        if self.sub_chain is not None:
            return "sub_chain"
        if self.parallel is not None:
            return "parallel"
        return "provider"

    @property
    def has_branching(self) -> bool:
        return bool(self.branches) or self.default_next is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "provider": self.provider, "action_type": self.action_type,
                               "payload_template": self.payload_template}
        if self.on_failure is not None:
            out["on_failure"] = self.on_failure
        if self.delay_seconds is not None:
            out["delay_seconds"] = self.delay_seconds
        if self.branches:
            out["branches"] = [b.to_dict() for b in self.branches]
        if self.default_next is not None:
            out["default_next"] = self.default_next
        if self.sub_chain is not None:
            out["sub_chain"] = self.sub_chain
        if self.parallel is not None:
            out["parallel"] = self.parallel.to_dict()
        if self.timer is not None:
            out["timer"] = self.timer.to_dict()
        if self.wait_for_signal is not None:
            out["wait_for_signal"] = self.wait_for_signal.to_dict()
        if self.worker is not None:
            out["worker"] = self.worker
        if self.retry is not None:
            out["retry"] = self.retry.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class OnCancel:
    provider: str
    action_type: str

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "action_type": self.action_type}


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """One chain definition (the ``[[chains.definitions]]`` shape)."""

    name: str
    steps: tuple[ChainStepConfig, ...]
    on_failure: str = "abort"
    timeout_seconds: float | None = None
    on_cancel: OnCancel | None = None
    version: int = 1

    @property
    def has_branches(self) -> bool:
        return any(s.has_branching for s in self.steps)

    def step_index(self, name: str) -> int | None:
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "steps": [s.to_dict() for s in self.steps],
                               "on_failure": self.on_failure}
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.on_cancel is not None:
            out["on_cancel"] = self.on_cancel.to_dict()
        out["version"] = self.version
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | ChainConfig, where: str = "chain definition") -> ChainConfig:
        """Parse one definition; raises :class:`ChainConfigError` naming the chain, step and key."""
        if isinstance(data, ChainConfig):
            return data
        return _parse_chain(data, where)


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Typed access to one table, with the place it came from for error messages."""

    def __init__(self, data: Any, where: str, allowed: frozenset[str]) -> None:
        if not isinstance(data, Mapping):
            raise ChainConfigError(f"{where}: expected a table/object, got {type(data).__name__}")
        self.data = data
        self.where = where
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ChainConfigError(
                f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )

    def fail(self, key: str, problem: str) -> ChainConfigError:
        return ChainConfigError(f"{self.where}: `{key}` {problem}")

    def string(self, key: str, *, required: bool = False, default: str | None = None,
               non_empty: bool = False) -> str | None:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        if non_empty and not value:
            raise self.fail(key, "must not be empty")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.string(key, default=default)
        if value is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, key: str, *, minimum: float, integer: bool = False) -> float | None:
        if key not in self.data or self.data[key] is None:
            return None
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {type(value).__name__}")
        if integer and not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum:g}, got {value!r}")
        return value

    def integer(self, key: str, *, minimum: int, default: int | None = None) -> int | None:
        value = self.number(key, minimum=minimum, integer=True)
        return default if value is None else int(value)

    def table_list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise self.fail(key, f"must be a list, got {type(value).__name__}")
        return list(value)


_CHAIN_KEYS = frozenset({"name", "steps", "on_failure", "timeout_seconds", "on_cancel", "version"})
_STEP_KEYS = frozenset({
    "name", "provider", "action_type", "payload_template", "on_failure", "delay_seconds", "branches",
    "default_next", "sub_chain", "parallel", "timer", "wait_for_signal", "worker", "retry",
})
_BRANCH_KEYS = frozenset({"field", "operator", "value", "target"})
_PARALLEL_KEYS = frozenset({"steps", "join", "on_failure", "timeout_seconds", "max_concurrency"})
_RETRY_KEYS = frozenset({"max_retries", "backoff_ms", "strategy", "jitter_ms"})
_TIMER_KEYS = frozenset({"duration_seconds", "until"})
_SIGNAL_KEYS = frozenset({"signal_name", "timeout_seconds", "on_timeout"})
_ON_CANCEL_KEYS = frozenset({"provider", "action_type"})


def _parse_chain(data: Any, where: str) -> ChainConfig:
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        where = f"chain '{data['name']}'"
    r = _Reader(data, where, _CHAIN_KEYS)
    name = r.string("name", required=True, non_empty=True)
    assert name is not None
    if "steps" not in data:
        raise r.fail("steps", "is required")
    steps = tuple(
        _parse_step(item, f"{where} steps[{i}]") for i, item in enumerate(r.table_list("steps"))
    )
    on_cancel = None
    if data.get("on_cancel") is not None:
        oc = _Reader(data["on_cancel"], f"{where} on_cancel", _ON_CANCEL_KEYS)
        on_cancel = OnCancel(oc.string("provider", default="webhook") or "webhook",
                             oc.string("action_type", default="chain_cancelled") or "chain_cancelled")
    return ChainConfig(
        name=name,
        steps=steps,
        on_failure=r.choice("on_failure", CHAIN_POLICIES, "abort") or "abort",
        timeout_seconds=r.number("timeout_seconds", minimum=1),
        on_cancel=on_cancel,
        version=r.integer("version", minimum=1, default=1) or 1,
    )


def _parse_step(data: Any, where: str) -> ChainStepConfig:
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        where = f"{where.rsplit(' steps[', 1)[0]} step '{data['name']}'"
    r = _Reader(data, where, _STEP_KEYS)
    name = r.string("name", required=True, non_empty=True)
    assert name is not None
    branches = tuple(_parse_branch(b, f"{where} branches[{i}]") for i, b in enumerate(r.table_list("branches")))
    parallel = None
    if data.get("parallel") is not None:
        p = _Reader(data["parallel"], f"{where} parallel", _PARALLEL_KEYS)
        parallel = ParallelConfig(
            steps=tuple(_parse_step(s, f"{where} parallel steps[{i}]") for i, s in enumerate(p.table_list("steps"))),
            join=p.choice("join", JOIN_POLICIES, "all") or "all",
            on_failure=p.choice("on_failure", PARALLEL_POLICIES, "fail_fast") or "fail_fast",
            timeout_seconds=p.number("timeout_seconds", minimum=0.001),
            max_concurrency=p.integer("max_concurrency", minimum=0),
        )
    timer = None
    if data.get("timer") is not None:
        t = _Reader(data["timer"], f"{where} timer", _TIMER_KEYS)
        until = None
        if data["timer"].get("until") is not None:
            try:
                until = coerce_datetime(data["timer"]["until"])
            except ValueError as exc:
                raise t.fail("until", f"must be an RFC 3339 timestamp ({exc})") from exc
        timer = TimerConfig(t.number("duration_seconds", minimum=0), until)
    signal = None
    if data.get("wait_for_signal") is not None:
        s = _Reader(data["wait_for_signal"], f"{where} wait_for_signal", _SIGNAL_KEYS)
        signal = SignalConfig(s.string("signal_name", default="") or "", s.number("timeout_seconds", minimum=0.001),
                              s.string("on_timeout"))
    retry = None
    if data.get("retry") is not None:
        rr = _Reader(data["retry"], f"{where} retry", _RETRY_KEYS)
        max_retries = rr.integer("max_retries", minimum=0)
        if max_retries is None:
            raise rr.fail("max_retries", "is required")
        retry = RetryPolicy(
            max_retries=max_retries,
            backoff_ms=rr.integer("backoff_ms", minimum=0, default=1000) or 0,
            strategy=rr.choice("strategy", RETRY_STRATEGIES, "fixed") or "fixed",
            jitter_ms=rr.integer("jitter_ms", minimum=0),
        )
    template = data.get("payload_template")
    return ChainStepConfig(
        name=name,
        provider=r.string("provider", default="") or "",
        action_type=r.string("action_type", default="") or "",
        payload_template={} if template is None else template,
        on_failure=r.choice("on_failure", STEP_POLICIES, None),
        delay_seconds=r.number("delay_seconds", minimum=0),
        branches=branches,
        default_next=r.string("default_next"),
        sub_chain=r.string("sub_chain"),
        parallel=parallel,
        timer=timer,
        wait_for_signal=signal,
        worker=data.get("worker"),
        retry=retry,
    )


def _parse_branch(data: Any, where: str) -> BranchCondition:
    r = _Reader(data, where, _BRANCH_KEYS)
    field_name = r.string("field", required=True, non_empty=True)
    target = r.string("target", required=True, non_empty=True)
    operator = r.choice("operator", OPERATORS, "eq") or "eq"
    assert field_name is not None and target is not None
    if field_name not in ("success", "body") and not field_name.startswith("body."):
        raise r.fail("field", f"must be `success`, `body` or `body.<path>`, got {field_name!r} "
                              "(any other field always reads as null)")
    return BranchCondition(field_name, operator, target, data.get("value"), "value" in data)
