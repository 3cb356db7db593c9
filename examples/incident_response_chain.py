"""An incident-response chain, end to end, with no server and no waiting.

An ``incident`` action starts the chain ``incident-response``:

1. ``triage`` asks a (fake) classifier how bad the incident is;
2. a branch sends critical incidents to ``escalate`` and everything else to
   ``log-only``;
3. ``escalate`` is a parallel group: Slack, e-mail and the pager are notified
   at once, and the step succeeds when all of them did;
4. ``page-oncall`` runs another chain, ``oncall-handoff``, as a sub-chain
   (it waits five minutes, then asks the on-call person to acknowledge);
5. ``close`` writes a summary built from earlier results with templates.

Time comes from a ``FakeClock`` and the background work is driven with
``tick()``, so the five-minute wait takes no time. The script prints every step
as it runs and, at the end, the path each chain took.

Run: ``python examples/incident_response_chain.py``
"""

from __future__ import annotations

from typing import Any

from acteon import Action, Gateway
from acteon.outcomes import ChainStarted
from acteon.providers import provider
from acteon.testing import FakeClock

RULES = """
rules:
  - name: incidents-run-the-playbook
    condition: {field: action.action_type, eq: incident}
    action: {type: chain, chain: incident-response}
"""

CHAINS: list[dict[str, Any]] = [
    {
        "name": "oncall-handoff",
        "steps": [
            {"name": "wait-for-quiet", "timer": {"duration_seconds": 300}},
            {"name": "ask-ack", "provider": "pager", "action_type": "ack_request",
             "payload_template": {"incident": "{{origin.payload.id}}", "after": "{{prev.body.fired_at}}"}},
        ],
    },
    {
        "name": "incident-response",
        "timeout_seconds": 3600,
        "steps": [
            {"name": "triage", "provider": "classifier", "action_type": "classify",
             "payload_template": {"title": "{{origin.payload.title}}"},
             "branches": [{"field": "body.severity", "operator": "eq", "value": "critical", "target": "escalate"}],
             "default_next": "log-only"},
            {"name": "log-only", "provider": "log", "action_type": "note",
             "payload_template": {"text": "minor incident {{origin.payload.id}}"},
             "default_next": "close"},
            {"name": "escalate", "parallel": {
                "join": "all",
                "on_failure": "best_effort",
                "timeout_seconds": 30,
                "steps": [
                    {"name": "slack", "provider": "slack", "action_type": "post",
                     "payload_template": {"text": "CRITICAL {{origin.payload.id}}: {{origin.payload.title}}"}},
                    {"name": "email", "provider": "email", "action_type": "send",
                     "payload_template": {"to": "oncall@example.com", "subject": "{{origin.payload.title}}"}},
                    {"name": "pager", "provider": "pager", "action_type": "page",
                     "payload_template": {"incident": "{{origin.payload.id}}", "urgency": "high"}},
                ]}},
            {"name": "page-oncall", "sub_chain": "oncall-handoff"},
            {"name": "close", "provider": "log", "action_type": "summary",
             "payload_template": {
                 "incident": "{{origin.payload.id}}",
                 "severity": "{{steps.triage.body.severity}}",
                 "slack_ts": "{{steps.slack.body.ts}}",
                 "acknowledged": "{{steps.page-oncall.body.acknowledged}}",
             }},
        ],
    },
]


def show(name: str, action: Action, body: dict[str, Any]) -> dict[str, Any]:
    print(f"  [{name}] {action.action_type} {action.payload}")
    return body


@provider("classifier", inline=True)
def classifier(action: Action) -> dict[str, Any]:
    title = str(action.payload["title"]).lower()
    return show("classifier", action, {"severity": "critical" if "down" in title else "minor"})


@provider("slack", inline=True)
def slack(action: Action) -> dict[str, Any]:
    return show("slack", action, {"ts": "1718000000.001"})


@provider("email", inline=True)
def email(action: Action) -> dict[str, Any]:
    return show("email", action, {"queued": True})


@provider("pager", inline=True)
def pager(action: Action) -> dict[str, Any]:
    return show("pager", action, {"acknowledged": action.action_type == "ack_request"})


@provider("log", inline=True)
def log(action: Action) -> dict[str, Any]:
    return show("log", action, {"logged": True})


def main() -> None:
    clock = FakeClock("2026-03-01T09:00:00Z")
    with Gateway(rules=RULES, providers=[classifier, slack, email, pager, log], chains=CHAINS, clock=clock,
                 background=False) as gw:
        started = []
        for incident_id, title in (("INC-7", "Checkout is down"), ("INC-8", "Typo on the pricing page")):
            outcome = gw.dispatch(Action(namespace="shop", tenant="acme", provider="log", action_type="incident",
                                         payload={"id": incident_id, "title": title}))
            assert isinstance(outcome, ChainStarted)
            print(f"{incident_id}: chain {outcome.chain_name} started ({outcome.total_steps} steps)")
            started.append(outcome.chain_id)

        for _ in range(20):
            clock.advance(60)  # a minute passes between background ticks
            gw.tick()
            if all(gw.get_chain("shop", "acme", cid).status in ("completed", "failed")  # type: ignore[union-attr]
                   for cid in started):
                break

        for chain_id in started:
            detail = gw.get_chain("shop", "acme", chain_id)
            assert detail is not None
            print(f"\nchain {chain_id[:8]}: {detail.status}; path: {' -> '.join(detail.execution_path)}")
            print_tree(detail.execution_tree, "  ")


def print_tree(nodes: list[dict[str, Any]], indent: str) -> None:
    for node in nodes:
        print(f"{indent}{node['step']} ({node['kind']}, {node['status']})")
        for child in node.get("children", []):
            print(f"{indent}  - {child['step']}: {child['status']}")
        sub = node.get("sub_chain")
        if sub is not None:
            print(f"{indent}  sub-chain {sub['chain_name']} ({sub.get('status', '?')}):")
            print_tree(sub.get("path", []), indent + "    ")


if __name__ == "__main__":
    main()
