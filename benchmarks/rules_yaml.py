"""Micro-benchmark: ``await rules.aevaluate()`` of a 10-rule YAML set where the last rule matches.

Run: ``.venv/bin/python benchmarks/rules_yaml.py``. Prints the best-of-N mean
µs per evaluation for the async hot path and the sync twin.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from acteon import Action
from acteon.rules import load_rules

RULES = (
    "rules:\n"
    + "".join(
        f"""  - name: rule-{i}
    priority: {i}
    condition: {{field: action.action_type, eq: "type-{i}"}}
    action: {{type: suppress}}
"""
        for i in range(9)
    )
    + """  - name: rule-9
    priority: 9
    condition:
      all:
        - {field: action.action_type, eq: "send_email"}
        - {field: action.payload.priority, gte: 3}
    action: {type: throttle, max_count: 100, window_seconds: 60}
"""
)


class _Store:
    async def get(self, key: str) -> str | None:
        return None


async def _bench_async(rules, action, now, store, n: int) -> float:
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            await rules.aevaluate(action, now=now, state=store, env={}, timezone=None)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    rules = load_rules(RULES)
    action = Action(
        namespace="ns",
        tenant="t",
        provider="email",
        action_type="send_email",
        payload={"to": "a@b.c", "priority": 5},
    )
    now = datetime.now(UTC)
    store = _Store()
    n = 20000
    assert asyncio.run(rules.aevaluate(action, now=now, state=store)).kind == "throttle"
    us = asyncio.run(_bench_async(rules, action, now, store, n))
    print(f"aevaluate, 10 rules, last matches: {us:.2f} µs/eval")
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            rules.evaluate(action, now=now)
        best = min(best, (time.perf_counter() - t0) / n)
    print(f"evaluate (sync), same set:          {best * 1e6:.2f} µs/eval")


if __name__ == "__main__":
    main()
