"""The rule engine: an ordered, compiled rule set (rules.md §9).

``RuleSet`` keeps its rules stably sorted by ascending priority and a flat
list of compiled entries for the enabled ones. ``aevaluate`` is the gateway's
hot path: build a cheap context, call each entry's closure until one is
truthy, return that rule's prebuilt :class:`Verdict`. State reads, embedding
calls and WASM calls that need awaiting interrupt a closure with
:class:`Pending`; the driver awaits the answer and re-runs that rule.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import anyio

from acteon._action import Action
from acteon._exceptions import RuleEvaluationError, UsageError
from acteon._timefmt import coerce_datetime
from acteon.rules import ir
from acteon.rules._context import EvalContext, Lookup, discard
from acteon.rules._errors import EvalError, InvalidTimezone, Pending
from acteon.rules._model import ALLOW, Rule, Verdict
from acteon.rules._time import lookup_zone
from acteon.rules._trace import EvaluationTrace, run_trace


class _Entry:
    """One enabled rule, ready to run (or a dispatch table standing for several).

    The scan loop calls ``fn(ctx)``; a truthy result means a match, and the
    verdict is ``verdict`` -- or, for a dispatch table (``verdict is None``),
    the Verdict object ``fn`` returned.
    """

    __slots__ = ("fn", "index", "rule", "verdict")

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.index = index
        self.verdict: Verdict | None = rule.verdict()
        self.fn = entry_function(rule)


# Action attributes that are always a string (or None): comparing them with a
# string literal can never raise, which is what makes table dispatch exact.
_TABLE_ATTRS = frozenset({"id", "namespace", "tenant", "provider", "action_type"})


def _table_keys(rule: Rule) -> tuple[str, list[str]] | None:
    """``(attr, values)`` when the rule is exactly ``action.<attr> == "v"`` / ``in [...]``."""
    cond = rule.condition
    if rule.timezone is not None or not isinstance(cond, ir.Binary):
        return None
    left, right = cond.left, cond.right
    if not (isinstance(left, ir.Field) and isinstance(left.base, ir.Ident) and left.base.name == "action"):
        return None
    if left.name not in _TABLE_ATTRS:
        return None
    if cond.op is ir.BinaryOp.EQ and isinstance(right, ir.String):
        return left.name, [right.val]
    if (
        cond.op is ir.BinaryOp.IN
        and isinstance(right, ir.List)
        and all(isinstance(i, ir.String) for i in right.items)
    ):
        return left.name, [i.val for i in right.items if isinstance(i, ir.String)]
    return None


def _dispatch_entry(run: list[tuple[Rule, str, list[str]]], index: int) -> _Entry:
    """One entry for consecutive table-able rules on the same attribute: a dict lookup."""
    attr = run[0][1]
    table: dict[str, Verdict] = {}
    for rule, _, values in run:
        for value in values:
            table.setdefault(value, rule.verdict())  # first rule in order wins
    entry = _Entry.__new__(_Entry)
    entry.rule = run[0][0]
    entry.index = index
    entry.verdict = None
    get_attr = attrgetter(f"action.{attr}")
    lookup = table.get
    entry.fn = lambda ctx: lookup(get_attr(ctx))
    return entry


def _build_entries(rules: list[Rule]) -> list[_Entry]:
    entries: list[_Entry] = []
    run: list[tuple[Rule, str, list[str]]] = []

    def flush() -> None:
        if len(run) >= 2:
            entries.append(_dispatch_entry(run, len(entries)))
        else:
            entries.extend(_Entry(rule, len(entries)) for rule, _, _ in run)
        run.clear()

    for rule in rules:
        if not rule.enabled:
            continue
        keys = _table_keys(rule)
        if keys is not None and (not run or run[0][1] == keys[0]):
            run.append((rule, *keys))
            continue
        flush()
        if keys is not None:
            run.append((rule, *keys))
        else:
            entries.append(_Entry(rule, len(entries)))
    flush()
    return entries


def entry_function(rule: Rule) -> ir.Evaluator:
    """The rule's closure, wrapped to switch the ``time`` map to the rule's timezone."""
    inner = rule.compiled()
    name = rule.timezone
    if name is None:
        return inner
    zone = lookup_zone(name)
    if zone is None:

        def invalid(ctx: Any) -> Any:
            raise InvalidTimezone(name, field="timezone")

        return invalid

    def in_zone(ctx: Any) -> Any:
        previous = ctx.zone
        ctx.zone = zone
        try:
            return inner(ctx)
        finally:
            ctx.zone = previous

    return in_zone


def _wrap_error(entry: _Entry | None, err: Exception) -> RuleEvaluationError:
    rule = None if entry is None else entry.rule.name
    if isinstance(err, EvalError):
        return RuleEvaluationError(str(err), rule=rule, field=err.field)
    return RuleEvaluationError(f"evaluation error: {err}", rule=rule)


def _coerce_action(action: Any) -> Action:
    if isinstance(action, Action):
        return action
    if isinstance(action, Mapping):
        return Action.model_validate(dict(action))
    raise TypeError(f"expected an acteon.Action or a dict in wire form, got {type(action).__name__}")


def _in_async_context() -> bool:
    """Is an event loop (asyncio, or trio via sniffio when installed) running in this thread?"""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio comes with trio / httpx
        return False
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


class RuleSet:
    """An ordered set of rules that turns actions into verdicts.

    Rules are kept stably sorted by ascending ``priority`` (ties keep insertion
    order). The set owns copies of the rules it is given, so enabling or
    disabling a rule here never affects another set; use :meth:`enable_rule`
    and :meth:`disable_rule` rather than flipping ``Rule.enabled`` by hand.
    """

    def __init__(self, rules: Iterable[Rule] = (), *, warnings: Iterable[str] = ()) -> None:
        self._rules: list[Rule] = []
        self._entries: list[_Entry] = []
        self.warnings: list[str] = list(warnings)
        self._install([r.copy() for r in rules])

    # ------------------------------------------------------------------ management

    def _install(self, rules: list[Rule]) -> None:
        ordered = sorted(self._rules + rules, key=lambda r: r.priority)
        entries = _build_entries(ordered)
        # Swap both lists at once: a concurrent evaluation sees the old or the new set.
        self._rules, self._entries = ordered, entries

    def _rebuild(self) -> None:
        self._rules, rules = [], self._rules
        self._install(rules)

    def add_rule(self, rule: Rule) -> None:
        self._install([rule.copy()])

    def add_rules(self, rules: Iterable[Rule]) -> None:
        self._install([r.copy() for r in rules])

    @classmethod
    def merge(cls, *sets: RuleSet) -> RuleSet:
        """One set holding the rules of every argument (in argument order for equal priorities)."""
        merged = cls()
        for rs in sets:
            merged.add_rules(rs._rules)
            merged.warnings.extend(rs.warnings)
        return merged

    @property
    def rules(self) -> list[Rule]:
        """The rules in evaluation order (a new list)."""
        return list(self._rules)

    def names(self) -> list[str]:
        return [r.name for r in self._rules]

    def rule_by_name(self, name: str) -> Rule | None:
        """The first rule (in priority order) with this name."""
        for rule in self._rules:
            if rule.name == name:
                return rule
        return None

    def _set_enabled(self, name: str, enabled: bool) -> bool:
        rule = self.rule_by_name(name)
        if rule is None:
            return False
        rule.enabled = enabled
        self._rebuild()
        return True

    def enable_rule(self, name: str) -> bool:
        """Enable the first rule with this name; ``False`` when there is none."""
        return self._set_enabled(name, True)

    def disable_rule(self, name: str) -> bool:
        """Disable the first rule with this name; ``False`` when there is none."""
        return self._set_enabled(name, False)

    def rules_version(self) -> str:
        """A digest of ``(name, version, enabled)`` in order; changes when the set does."""
        digest = hashlib.sha256()
        for r in self._rules:
            digest.update(f"{r.name}\0{r.version}\0{int(r.enabled)}\n".encode())
        return digest.hexdigest()[:16]

    def semantic_topics(self) -> list[str]:
        """Every semantic-match topic of the enabled rules (to pre-warm embedding caches)."""
        topics: list[str] = []
        for rule in self._rules:
            if not rule.enabled:
                continue
            for topic in ir.semantic_topics(rule.condition):
                if topic not in topics:
                    topics.append(topic)
        return topics

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(list(self._rules))

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"RuleSet({len(self._rules)} rules, {len(self._entries)} enabled)"

    # ------------------------------------------------------------------ evaluation

    @staticmethod
    def _context(
        action: Any,
        now: Any,
        state: Any,
        env: Mapping[str, str] | None,
        timezone: str | None,
        embedding: Any,
        wasm: Any,
        tracing: bool = False,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> EvalContext:
        if type(action) is not Action:
            action = _coerce_action(action)
        if now is not None and (type(now) is not datetime or now.tzinfo is not UTC):
            now = coerce_datetime(now)
        zone = None
        if timezone is not None:
            zone = lookup_zone(timezone)
            if zone is None:
                raise RuleEvaluationError(f"invalid timezone: {timezone}", field="timezone")
        if env is not None and type(env) is not dict:
            env = dict(env)
        return EvalContext(action, now, state, env, zone, embedding, wasm, tracing, lookups)

    def _scan(self, ctx: EvalContext, start: int) -> Verdict:
        entry: _Entry | None = None
        try:
            for entry in self._entries[start:]:
                matched = entry.fn(ctx)
                if matched:
                    return entry.verdict or matched  # type: ignore[no-any-return,unused-ignore]
        except Pending as pending:
            assert entry is not None
            pending.index = entry.index
            raise
        except Exception as err:
            raise _wrap_error(entry, err) from err
        return ALLOW

    def evaluate(
        self,
        action: Action | Mapping[str, Any],
        now: datetime | str | None = None,
        state: Any = None,
        env: Mapping[str, str] | None = None,
        timezone: str | None = None,
        *,
        embedding: Any = None,
        wasm: Any = None,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> Verdict:
        """The verdict of the first enabled rule whose condition is truthy, else ``allow``.

        Raises :class:`acteon.RuleEvaluationError` (fail closed, D9) when a rule
        reached before the match cannot be evaluated. With an asynchronous
        ``state``/``embedding``/``wasm`` object this runs an event loop of its
        own, so call :meth:`aevaluate` instead from async code.
        """
        ctx = self._context(action, now, state, env, timezone, embedding, wasm, lookups=lookups)
        try:
            return self._scan(ctx, 0)
        except Pending as pending:
            discard(pending)
        return self._run_async(  # type: ignore[no-any-return]
            functools.partial(
                self.aevaluate,
                ctx.action,
                now=ctx.now,
                state=state,
                env=env,
                timezone=timezone,
                embedding=embedding,
                wasm=wasm,
                lookups=lookups,
            )
        )

    async def aevaluate(
        self,
        action: Action | Mapping[str, Any],
        now: datetime | str | None = None,
        state: Any = None,
        env: Mapping[str, str] | None = None,
        timezone: str | None = None,
        *,
        embedding: Any = None,
        wasm: Any = None,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> Verdict:
        """Async twin of :meth:`evaluate`: awaits asynchronous state stores and services."""
        ctx = self._context(action, now, state, env, timezone, embedding, wasm, lookups=lookups)
        entry: _Entry | None = None
        # The loop of _scan, inlined: this is the gateway's per-dispatch path, and calling
        # _scan here measured ~0.02-0.13 µs slower per evaluation (call, entry-list slice).
        try:
            for entry in self._entries:
                matched = entry.fn(ctx)
                if matched:
                    return entry.verdict or matched  # type: ignore[no-any-return,unused-ignore]
            return ALLOW
        except Pending as first:
            assert entry is not None
            pending, start = first, entry.index
        except Exception as err:
            raise _wrap_error(entry, err) from err
        # Slow path: a rule needs an awaited lookup; answer it and resume from that rule.
        while True:
            await ctx.resolve(pending)
            try:
                return self._scan(ctx, start)
            except Pending as again:
                pending, start = again, again.index

    def evaluate_with_trace(
        self,
        action: Action | Mapping[str, Any],
        include_disabled: bool = False,
        evaluate_all: bool = False,
        now: datetime | str | None = None,
        state: Any = None,
        env: Mapping[str, str] | None = None,
        timezone: str | None = None,
        *,
        embedding: Any = None,
        wasm: Any = None,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> EvaluationTrace:
        """Evaluate every reachable rule and report each one (rules.md §10); never raises per rule."""
        ctx = self._context(action, now, state, env, timezone, embedding, wasm, tracing=True, lookups=lookups)
        steps = run_trace(self._rules, ctx, include_disabled, evaluate_all, timezone)
        try:
            pending = next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        discard(pending)
        steps.close()
        return self._run_async(  # type: ignore[no-any-return]
            functools.partial(
                self.aevaluate_with_trace,
                ctx.action,
                include_disabled=include_disabled,
                evaluate_all=evaluate_all,
                now=ctx.now,
                state=state,
                env=env,
                timezone=timezone,
                embedding=embedding,
                wasm=wasm,
                lookups=lookups,
            )
        )

    async def aevaluate_with_trace(
        self,
        action: Action | Mapping[str, Any],
        include_disabled: bool = False,
        evaluate_all: bool = False,
        now: datetime | str | None = None,
        state: Any = None,
        env: Mapping[str, str] | None = None,
        timezone: str | None = None,
        *,
        embedding: Any = None,
        wasm: Any = None,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> EvaluationTrace:
        """Async twin of :meth:`evaluate_with_trace`."""
        ctx = self._context(action, now, state, env, timezone, embedding, wasm, tracing=True, lookups=lookups)
        steps = run_trace(self._rules, ctx, include_disabled, evaluate_all, timezone)
        try:
            pending = next(steps)
            while True:
                await ctx.resolve(pending)
                pending = steps.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    @staticmethod
    def _run_async(call: functools.partial[Any]) -> Any:
        if _in_async_context():
            raise UsageError(
                "this rule set needs an asynchronous state store, embedding or WASM runtime: "
                "call 'await rules.aevaluate(...)' / 'aevaluate_with_trace(...)' from async code"
            )
        return anyio.run(call)
