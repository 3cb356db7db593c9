"""Quickstart: dispatch real actions through YAML rules on an embedded gateway.

State and audit live in SQLite files under ./acteon-data (no server needed).
Run it twice: the deduplicated email stays deduplicated across runs, because
the dedup marker is in the state file.

    python examples/quickstart.py
"""

from __future__ import annotations

import json
from pathlib import Path

from acteon import Action, Gateway
from acteon.providers import LogProvider, provider

RULES = """
rules:
  - name: block-spam
    priority: 1
    condition: {field: action.action_type, eq: spam}
    action: {type: suppress}

  - name: urgent-to-sms
    priority: 2
    condition:
      all:
        - {field: action.action_type, eq: send_alert}
        - {field: action.payload.severity, eq: critical}
    action: {type: reroute, target_provider: sms}

  - name: one-welcome-email
    priority: 5
    condition: {field: action.payload.template, eq: welcome}
    action: {type: deduplicate, ttl_seconds: 86400}

  - name: at-most-3-digests-a-minute
    priority: 6
    condition: {field: action.action_type, eq: send_digest}
    action: {type: throttle, max_count: 3, window_seconds: 60}

  - name: tag-emails
    priority: 10
    condition: {field: action.provider, eq: email}
    action: {type: modify, changes: {source: quickstart}}
"""


@provider("email", inline=True)
def send_email(action: Action) -> dict[str, object]:
    # A real application would call its mail service here.
    return {"sent_to": action.payload.get("to"), "source": action.payload.get("source")}


def main() -> None:
    data = Path("acteon-data")
    data.mkdir(exist_ok=True)
    actions = [
        Action(namespace="shop", tenant="acme", provider="email", action_type="send_email",
               payload={"to": "ada@example.com", "template": "welcome"}, dedup_key="welcome:ada"),
        Action(namespace="shop", tenant="acme", provider="email", action_type="send_email",
               payload={"to": "ada@example.com", "template": "welcome"}, dedup_key="welcome:ada"),
        Action(namespace="shop", tenant="acme", provider="email", action_type="send_receipt",
               payload={"to": "ada@example.com", "order": 42}),
        Action(namespace="shop", tenant="acme", provider="email", action_type="spam", payload={}),
        Action(namespace="ops", tenant="acme", provider="email", action_type="send_alert",
               payload={"severity": "critical", "text": "disk full"}),
        *[Action(namespace="shop", tenant="acme", provider="email", action_type="send_digest",
                 payload={"to": "bob@example.com", "n": i}) for i in range(4)],
    ]
    with Gateway(
        rules=RULES,
        state=f"sqlite:///{data}/state.db",
        audit=f"sqlite:///{data}/audit.db",
        providers=[send_email, LogProvider("sms")],
        background=False,
    ) as gw:
        for action in actions:
            outcome = gw.dispatch(action)
            print(f"{action.action_type:<12} -> {json.dumps(outcome.to_wire())}")
        page = gw.audit_query({"tenant": "acme", "limit": 100})
        print(f"audit records for tenant acme: {page.total}")
        print("metrics:", {k: v for k, v in gw.metrics.snapshot().items() if v})


if __name__ == "__main__":
    main()
