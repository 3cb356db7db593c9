"""Rules: load YAML/CEL rule files, evaluate actions into verdicts, trace evaluations.

::

    from acteon.rules import load_rules

    rules = load_rules("rules/alerts.yaml")
    verdict = await rules.aevaluate(action, state=store)
    if verdict.kind == "throttle":
        ...

Conditions compile once, at load, into Python closures over an expression IR
(:mod:`acteon.rules.ir`); evaluation never walks a tree. See ``docs/rules.md``.
"""

from acteon.rules import ir
from acteon.rules._context import EvalContext, MockState
from acteon.rules._engine import RuleSet
from acteon.rules._errors import (
    EvalError,
    EvaluationError,
    InvalidRegex,
    InvalidTimezone,
    RuleTypeError,
    StateAccessError,
    UndefinedFunction,
    UndefinedVariable,
)
from acteon.rules._fixtures import arun_fixtures, fixtures_exit_code, format_fixture_report, run_fixtures
from acteon.rules._frontends import (
    Frontend,
    frontend_available,
    get_frontend,
    load_rules,
    load_rules_dir,
    register_frontend,
)
from acteon.rules._model import Rule, RuleAction, RuleSource, Verdict
from acteon.rules._patch import merge_patch
from acteon.rules._rulefile import FileResult
from acteon.rules._trace import EvaluationTrace, RuleTraceEntry, TraceContext

__all__ = [
    "EvalContext",
    "EvalError",
    "EvaluationError",
    "EvaluationTrace",
    "FileResult",
    "Frontend",
    "InvalidRegex",
    "InvalidTimezone",
    "MockState",
    "Rule",
    "RuleAction",
    "RuleSet",
    "RuleSource",
    "RuleTraceEntry",
    "RuleTypeError",
    "StateAccessError",
    "TraceContext",
    "UndefinedFunction",
    "UndefinedVariable",
    "Verdict",
    "arun_fixtures",
    "fixtures_exit_code",
    "format_fixture_report",
    "frontend_available",
    "get_frontend",
    "ir",
    "load_rules",
    "load_rules_dir",
    "merge_patch",
    "register_frontend",
    "run_fixtures",
]
