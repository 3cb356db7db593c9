"""Evaluation traces: the playground view of a rule set (rules.md §10).

:func:`run_trace` is a generator shared by the sync and async entry points:
it yields a :class:`Pending` whenever a rule needs an awaited lookup, and
returns the finished :class:`EvaluationTrace`.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from acteon.rules._context import EvalContext
from acteon.rules._errors import EvalError, Pending
from acteon.rules._model import Rule
from acteon.rules._patch import merge_patch
from acteon.rules._time import lookup_zone, tagged

FALLTHROUGH_NAME = "(default fallthrough)"
FALLTHROUGH_DESCRIPTION = "No rules matched the action. The system default is to allow."


@dataclass(slots=True)
class RuleTraceEntry:
    """What happened to one rule (or the synthetic fallthrough entry)."""

    rule_name: str
    priority: int
    enabled: bool
    condition_display: str
    result: str  # matched | not_matched | error | skipped
    evaluation_duration_us: int
    action: str
    source: str
    description: str | None = None
    skip_reason: str | None = None
    error: str | None = None
    semantic_details: dict[str, Any] | None = None
    modify_patch: Any = None
    modified_payload_preview: Any = None
    has_modify_preview: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_name": self.rule_name,
            "priority": self.priority,
            "enabled": self.enabled,
            "condition_display": self.condition_display,
            "result": self.result,
            "evaluation_duration_us": self.evaluation_duration_us,
            "action": self.action,
            "source": self.source,
        }
        if self.description is not None:
            out["description"] = self.description
        if self.skip_reason is not None:
            out["skip_reason"] = self.skip_reason
        if self.error is not None:
            out["error"] = self.error
        if self.semantic_details is not None:
            out["semantic_details"] = dict(self.semantic_details)
        if self.has_modify_preview:
            out["modify_patch"] = copy.deepcopy(self.modify_patch)
            out["modified_payload_preview"] = copy.deepcopy(self.modified_payload_preview)
        return out


@dataclass(slots=True)
class TraceContext:
    """The inputs a trace depended on: time map, env keys read, state keys read, timezone."""

    time: dict[str, Any]
    environment_keys: list[str] = field(default_factory=list)
    accessed_state_keys: list[str] = field(default_factory=list)
    effective_timezone: str | None = None

    def to_dict(self, tagged_time: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": tagged(self.time) if tagged_time else dict(self.time),
            "environment_keys": list(self.environment_keys),
        }
        if self.accessed_state_keys:
            out["accessed_state_keys"] = list(self.accessed_state_keys)
        if self.effective_timezone is not None:
            out["effective_timezone"] = self.effective_timezone
        return out


@dataclass(slots=True)
class EvaluationTrace:
    """The result of ``evaluate_with_trace``; :meth:`to_dict` is the upstream JSON shape."""

    verdict: str
    matched_rule: str | None
    has_errors: bool
    total_rules_evaluated: int
    total_rules_skipped: int
    evaluation_duration_us: int
    trace: list[RuleTraceEntry]
    context: TraceContext
    modified_payload: Any = None
    has_modified_payload: bool = False

    @property
    def entries(self) -> list[RuleTraceEntry]:
        return self.trace

    def to_dict(self, tagged_time: bool = True) -> dict[str, Any]:
        """Upstream JSON; ``context.time`` in the tagged form (``{"Map": {"hour": {"Int": 9}}}``)."""
        out: dict[str, Any] = {"verdict": self.verdict}
        if self.matched_rule is not None:
            out["matched_rule"] = self.matched_rule
        out.update(
            has_errors=self.has_errors,
            total_rules_evaluated=self.total_rules_evaluated,
            total_rules_skipped=self.total_rules_skipped,
            evaluation_duration_us=self.evaluation_duration_us,
            trace=[e.to_dict() for e in self.trace],
            context=self.context.to_dict(tagged_time),
        )
        if self.has_modified_payload:
            out["modified_payload"] = copy.deepcopy(self.modified_payload)
        return out


def _action_label(rule: Rule) -> str:
    return rule.action.kind


def _entry(rule: Rule, result: str, duration: int = 0, **extra: Any) -> RuleTraceEntry:
    return RuleTraceEntry(
        rule_name=rule.name,
        priority=rule.priority,
        enabled=rule.enabled,
        condition_display=rule.condition.to_source(),
        result=result,
        evaluation_duration_us=duration,
        action=_action_label(rule),
        source=str(rule.source),
        description=rule.description,
        **extra,
    )


def _fallthrough() -> RuleTraceEntry:
    return RuleTraceEntry(
        rule_name=FALLTHROUGH_NAME,
        priority=2147483647,
        enabled=True,
        condition_display="no rules matched",
        result="matched",
        evaluation_duration_us=0,
        action="Allow",
        source="System",
        description=FALLTHROUGH_DESCRIPTION,
    )


def run_trace(
    rules: list[Rule],
    ctx: EvalContext,
    include_disabled: bool,
    evaluate_all: bool,
    timezone: str | None,
) -> Generator[Pending, None, EvaluationTrace]:
    from acteon.rules._engine import entry_function

    started = perf_counter_ns()
    entries: list[RuleTraceEntry] = []
    first: Rule | None = None
    evaluated = skipped = 0
    has_errors = error_before_match = False
    payload = ctx.action.payload
    preview: Any = payload
    for rule in rules:
        if not rule.enabled:
            if include_disabled:
                entries.append(_entry(rule, "skipped", skip_reason="disabled"))
                skipped += 1
            continue
        if first is not None and not evaluate_all:
            entries.append(_entry(rule, "skipped", skip_reason="earlier_rule_matched"))
            skipped += 1
            continue
        evaluated += 1
        if rule.timezone is not None and lookup_zone(rule.timezone) is None:
            entries.append(_entry(rule, "error", error=f"invalid timezone: {rule.timezone}"))
            has_errors = True
            error_before_match = error_before_match or first is None
            continue
        fn = entry_function(rule)
        ctx.semantic = None
        error: str | None = None
        matched = False
        t0 = perf_counter_ns()
        while True:
            try:
                matched = bool(fn(ctx))
            except Pending as pending:
                yield pending
                continue
            except EvalError as exc:
                error = str(exc)
            except Exception as exc:  # a failing store adapter or user object: report, never raise
                error = f"evaluation error: {exc}"
            break
        duration = (perf_counter_ns() - t0) // 1000
        if error is not None:
            entry = _entry(rule, "error", duration, error=error)
            has_errors = True
            error_before_match = error_before_match or first is None
        else:
            entry = _entry(rule, "matched" if matched else "not_matched", duration)
        if ctx.semantic is not None:
            entry.semantic_details = ctx.semantic
        if matched:
            if first is None:
                first = rule
            if evaluate_all and rule.action.kind == "modify":
                changes = rule.action.params.get("changes")
                preview = merge_patch(preview, changes)
                entry.modify_patch = copy.deepcopy(changes)
                entry.modified_payload_preview = preview
                entry.has_modify_preview = True
        entries.append(entry)
    if error_before_match:
        verdict = "error"
    elif first is not None:
        verdict = first.verdict().kind
    else:
        verdict = "allow"
    if first is None and not error_before_match:
        entries.append(_fallthrough())
    trace_ctx = TraceContext(
        time=ctx.context_time(),
        environment_keys=sorted(ctx.env_keys or ()),
        accessed_state_keys=sorted(ctx.state_keys or ()),
        effective_timezone=timezone,
    )
    trace = EvaluationTrace(
        verdict=verdict,
        matched_rule=None if first is None else first.name,
        has_errors=has_errors,
        total_rules_evaluated=evaluated,
        total_rules_skipped=skipped,
        evaluation_duration_us=(perf_counter_ns() - started) // 1000,
        trace=entries,
        context=trace_ctx,
    )
    if verdict == "modify" and first is not None:
        trace.modified_payload = merge_patch(payload, first.action.params.get("changes"))
        trace.has_modified_payload = True
    return trace
