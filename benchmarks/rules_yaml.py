"""Micro-benchmark: ``await rules.aevaluate()`` of 10-rule YAML sets where the last rule matches.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/rules_yaml.py``. Prints the
best-of-7 mean µs per evaluation:

* ``routing``: nine ``action.action_type == "..."`` rules (compiled into one
  dispatch table) and a final two-clause rule;
* ``payload``: ten rules on payload / metadata fields (each rule is its own
  closure call; nothing can be folded).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from acteon import Action
from acteon.rules import RuleSet, load_rules

LAST_RULE = """  - name: rule-9
    priority: 9
    condition:
      all:
        - {field: action.action_type, eq: "send_email"}
        - {field: action.payload.priority, gte: 3}
    action: {type: throttle, max_count: 100, window_seconds: 60}
"""

ROUTING = (
    "rules:\n"
    + "".join(
        f"""  - name: rule-{i}
    priority: {i}
    condition: {{field: action.action_type, eq: "type-{i}"}}
    action: {{type: suppress}}
"""
        for i in range(9)
    )
    + LAST_RULE
)

_PAYLOAD_CONDITIONS = [
    '{field: action.payload.category, eq: "spam"}',
    '{field: action.metadata.tier, eq: "free"}',
    "{field: action.payload.priority, gt: 100}",
    '{field: action.payload.to, ends_with: "@blocked.example"}',
    '{field: action.payload.region, in_list: ["eu-1", "eu-2", "ap-1"]}',
    '{all: [{field: action.metadata.after_hours, eq: "true"}, {field: action.payload.priority, lt: 2}]}',
    '{field: action.payload.template, eq: "password_reset"}',
    '{field: action.payload.subject, contains: "URGENT"}',
    '{field: action.metadata.retry, eq: "3"}',
]
PAYLOAD = (
    "rules:\n"
    + "".join(
        f"""  - name: rule-{i}
    priority: {i}
    condition: {cond}
    action: {{type: suppress}}
"""
        for i, cond in enumerate(_PAYLOAD_CONDITIONS)
    )
    + LAST_RULE
)


class _Store:
    """Stands in for the gateway's async StateStore (never read by these rules)."""

    async def get(self, key: str) -> str | None:
        return None


async def _bench_async(rules: RuleSet, action: Action, now: datetime, store: Any, n: int) -> float:
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            await rules.aevaluate(action, now=now, state=store, env={}, timezone=None)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def _bench_sync(rules: RuleSet, action: Action, now: datetime, n: int) -> float:
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            rules.evaluate(action, now=now)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    action = Action(
        namespace="ns",
        tenant="t",
        provider="email",
        action_type="send_email",
        payload={"to": "a@b.example", "priority": 5, "subject": "hello", "region": "us-1"},
        metadata={"tier": "pro"},
    )
    now = datetime.now(UTC)
    store = _Store()
    n = 20000
    for label, text in (("routing", ROUTING), ("payload", PAYLOAD)):
        rules = load_rules(text)
        verdict = asyncio.run(rules.aevaluate(action, now=now, state=store))
        assert verdict.kind == "throttle" and verdict.rule == "rule-9", verdict
        us = asyncio.run(_bench_async(rules, action, now, store, n))
        sync = _bench_sync(rules, action, now, n)
        print(f"{label:8s} aevaluate: {us:5.2f} µs/eval   evaluate (sync): {sync:5.2f} µs/eval")


if __name__ == "__main__":
    main()
