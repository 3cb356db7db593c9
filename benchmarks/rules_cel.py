"""CEL condition evaluation: acteon versus cel-python (celpy) and cel-expr-python.

The same CEL condition is evaluated on the same action by

* **acteon** -- the condition loaded from a ``.cel`` rule file
  (``load_rules(text, format="cel")``) and evaluated with
  ``RuleSet.evaluate(action)``: a fresh evaluation context per call, the
  condition's compiled closure, the verdict;
* **celpy** -- cel-python's interpreter: ``env.program(env.compile(expr))``
  evaluated on an activation converted once with ``celpy.json_to_cel``;
* **cel-expr-python** -- Google's C++ CEL through its Python binding,
  ``expr.eval(activation)`` with an activation built once (its fastest form;
  ``eval(data=...)``, converting the action on every call, is printed too).

The competitors get the action pre-converted; acteon builds its context from
the ``Action`` on every call. Targets (issue: rules engine): acteon >= 100x
celpy and >= 1x cel-expr-python. Finally a 100-rule CEL set where only the
last rule matches is timed (first match wins, so all 100 conditions run).

    python benchmarks/rules_cel.py [--n 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import celpy
from celpy.adapter import json_to_cel

from acteon import Action
from acteon.rules import RuleSet, load_rules

try:  # Google's C++ CEL (pip install cel-expr-python); optional
    from cel_expr_python import cel as cel_cpp  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the machine
    cel_cpp = None

EXPRESSIONS = [
    'action.action_type == "send_email" && action.payload.priority > 3 && action.tenant in ["t1","t2"]',
    'action.payload.to.endsWith("@example.com") || action.payload.subject.startsWith("URGENT")',
    "action.payload.priority >= 3 ? action.payload.priority * 2 > 8 : false",
]
MAIN = EXPRESSIONS[0]
# The same condition as MAIN written as YAML predicates: CEL must cost no more than this.
MAIN_YAML = (
    "rules:\n  - name: r0\n    condition:\n      all:\n"
    "        - {field: action.action_type, eq: send_email}\n"
    "        - {field: action.payload.priority, gt: 3}\n"
    "        - {field: action.tenant, in_list: [t1, t2]}\n"
    "    action: {type: deny}\n"
)
TARGET_CELPY = 100.0
TARGET_CEL_CPP = 1.0

ACTION = Action(
    namespace="notifications",
    tenant="t1",
    provider="email",
    action_type="send_email",
    payload={"to": "user@example.com", "subject": "Hello", "priority": 5},
)


def rule_file(conditions: list[str]) -> str:
    lines = ["rules:"]
    for i, cond in enumerate(conditions):
        quoted = cond.replace("'", "''")
        lines.append(f"  - {{name: r{i}, priority: {i}, condition: '{quoted}', action: {{type: deny}}}}")
    return "\n".join(lines) + "\n"


def celpy_activation() -> Any:
    return json_to_cel(action_document())


def action_document() -> dict[str, Any]:
    """The action as the ``action`` map of the rules (what the CEL engines see)."""
    wire = ACTION.to_wire()
    return {"action": {k: v for k, v in wire.items() if v is not None}}


def timed(fn: Callable[[], Any], n: int, rounds: int) -> float:
    """Best per-call time in seconds over ``rounds`` runs of ``n`` calls."""
    for _ in range(min(n, 1000)):
        fn()
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = (time.perf_counter() - start) / n
        finally:
            gc.enable()
        best = min(best, elapsed)
    return best


# --------------------------------------------------------------------------- engines


def acteon_single(expr: str) -> Callable[[], Any]:
    rules = load_rules(rule_file([expr]), format="cel")
    evaluate = rules.evaluate
    action = ACTION
    return lambda: evaluate(action)


def celpy_program(expr: str) -> Callable[[], Any]:
    env = celpy.Environment()
    prog = env.program(env.compile(expr))
    activation = celpy_activation()
    return lambda: prog.evaluate(activation)


def cel_cpp_env() -> Any:
    return cel_cpp.NewEnv(variables={"action": cel_cpp.Type.DYN})


def cel_cpp_program(expr: str, *, per_call_data: bool = False) -> Callable[[], Any]:
    env = cel_cpp_env()
    compiled = env.compile(expr, disable_check=True)
    doc = action_document()
    if per_call_data:
        return lambda: compiled.eval(data=doc)
    activation = env.Activation(doc)
    return lambda: compiled.eval(activation)


def check_agreement(expr: str) -> None:
    """All engines must give the same answer, or the comparison is meaningless."""
    ours = load_rules(rule_file([expr]), format="cel").evaluate(ACTION).kind == "deny"
    env = celpy.Environment()
    theirs = bool(env.program(env.compile(expr)).evaluate(celpy_activation()))
    if ours != theirs:
        raise SystemExit(f"acteon and celpy disagree on {expr!r}: {ours} vs {theirs}")
    if cel_cpp is not None:
        cpp = bool(cel_cpp_program(expr)().value())
        if ours != cpp:
            raise SystemExit(f"acteon and cel-expr-python disagree on {expr!r}: {ours} vs {cpp}")


# --------------------------------------------------------------------------- 100-rule set


def hundred_conditions() -> list[str]:
    misses = [f'action.action_type == "other-{i}" && action.payload.priority > {i}' for i in range(99)]
    return [*misses, MAIN]


def bench_hundred(n: int, rounds: int) -> dict[str, float]:
    conditions = hundred_conditions()
    rules: RuleSet = load_rules(rule_file(conditions), format="cel")
    verdict = rules.evaluate(ACTION)
    assert verdict.rule == "r99", verdict
    results = {"acteon": timed(lambda: rules.evaluate(ACTION), n, rounds)}

    env = celpy.Environment()
    progs = [env.program(env.compile(c)) for c in conditions]
    activation = celpy_activation()

    def celpy_first_match() -> int:
        for i, prog in enumerate(progs):
            if prog.evaluate(activation):
                return i
        return -1

    assert celpy_first_match() == 99
    results["celpy"] = timed(celpy_first_match, max(1, n // 100), rounds)

    if cel_cpp is not None:
        cenv = cel_cpp_env()
        compiled = [cenv.compile(c, disable_check=True) for c in conditions]
        cact = cenv.Activation(action_document())

        def cpp_first_match() -> int:
            for i, expr in enumerate(compiled):
                if expr.eval(cact).value():
                    return i
            return -1

        assert cpp_first_match() == 99
        results["cel-expr-python"] = timed(cpp_first_match, max(1, n // 20), rounds)
    return results


# --------------------------------------------------------------------------- report


def fmt_rate(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} us/eval  {1 / seconds:12,.0f} evals/s"


def verdict_line(name: str, ratio: float, target: float) -> str:
    mark = "OK" if ratio >= target else "BELOW TARGET"
    return f"    acteon vs {name:<16} {ratio:8.1f}x   (target >= {target:g}x: {mark})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="evaluations per round for acteon")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = args.n, args.rounds
    celpy_n = max(1, n // 100)  # cel-python is slow; fewer calls give the same per-call figure
    cpp_n = max(1, n // 2)

    print(f"Python {sys.version.split()[0]}; best of {rounds} rounds")
    if cel_cpp is None:
        print("cel-expr-python: not installed (pip install cel-expr-python)")
    ok = True
    for expr in EXPRESSIONS:
        check_agreement(expr)
        print(f"\n{expr}")
        ours = timed(acteon_single(expr), n, rounds)
        slow = timed(celpy_program(expr), celpy_n, rounds)
        print(f"  acteon           {fmt_rate(ours)}")
        if expr == MAIN:
            yaml_rules = load_rules(MAIN_YAML, format="yaml")
            assert yaml_rules.evaluate(ACTION).rule == "r0"
            yaml_time = timed(functools.partial(yaml_rules.evaluate, ACTION), n, rounds)
            print(f"  acteon (YAML)    {fmt_rate(yaml_time)}   (same condition as YAML predicates)")
        print(f"  celpy            {fmt_rate(slow)}")
        if cel_cpp is not None:
            cpp = timed(cel_cpp_program(expr), cpp_n, rounds)
            cpp_data = timed(cel_cpp_program(expr, per_call_data=True), cpp_n, rounds)
            print(f"  cel-expr-python  {fmt_rate(cpp)}   (activation built once)")
            print(f"  cel-expr-python  {fmt_rate(cpp_data)}   (eval(data=...) per call)")
        else:
            print("  cel-expr-python  not installed")
        ratio_slow = slow / ours
        print(verdict_line("celpy", ratio_slow, TARGET_CELPY))
        ok &= ratio_slow >= TARGET_CELPY
        if cel_cpp is not None:
            ratio_cpp = cpp / ours
            print(verdict_line("cel-expr-python", ratio_cpp, TARGET_CEL_CPP))
            ok &= ratio_cpp >= TARGET_CEL_CPP

    print("\n100-rule CEL set, only the last rule matches (all 100 conditions evaluated):")
    hundred = bench_hundred(max(1, n // 20), rounds)
    for name, seconds in hundred.items():
        print(f"  {name:<16} {seconds * 1e6:10.1f} us per evaluation of the set")
    if "celpy" in hundred:
        print(f"    acteon vs celpy            {hundred['celpy'] / hundred['acteon']:8.1f}x")
    if "cel-expr-python" in hundred:
        print(f"    acteon vs cel-expr-python  {hundred['cel-expr-python'] / hundred['acteon']:8.1f}x")
    print("\nall targets met" if ok else "\nSOME TARGETS NOT MET")


if __name__ == "__main__":
    main()
