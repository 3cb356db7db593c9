"""Human approvals, end to end, with no server and no waiting.

A rule parks refunds over 1000 until someone approves them. The "slack"
provider here just prints the notification it would post; its approve and
reject links carry signatures that the gateway checks. The script approves one
refund, rejects another and lets a third expire by moving a fake clock and
running the background jobs with ``tick()``. Every step shows up on the event
stream.

Run: ``python examples/approvals.py``
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from acteon import Action, Gateway
from acteon.outcomes import PendingApproval
from acteon.providers import provider
from acteon.testing import FakeClock

RULES = """
rules:
  - name: big-refunds-need-approval
    condition:
      all:
        - {field: action.action_type, eq: process_refund}
        - {field: action.payload.amount, gt: 1000}
    action:
      type: request_approval
      notify_provider: slack
      timeout_seconds: 3600
      message: "Refund over $1000"
"""

# In production these come from configuration ([[server.approval_keys]]), so that
# links keep working across restarts and every process verifies the same links.
KEYS = [{"id": "2026-01", "secret": "8f" * 32}]


@provider("slack", inline=True)
def slack(action: Action) -> dict[str, bool]:
    print(f"  [slack] {action.payload['subject']}")
    return {"ok": True}


@provider("payments", inline=True)
def payments(action: Action) -> dict[str, object]:
    print(f"  [payments] refunding {action.payload['amount']} to {action.payload['customer']}")
    return {"refunded": action.payload["amount"]}


def link(url: str) -> dict[str, str]:
    """The query parameters a browser would send back when the link is clicked."""
    query = parse_qs(urlparse(url).query)
    return {name: query[name][0] for name in ("sig", "expires_at", "kid")}


def refund(customer: str, amount: int) -> Action:
    return Action(namespace="shop", tenant="acme", provider="payments", action_type="process_refund",
                  payload={"customer": customer, "amount": amount})


def main() -> None:
    clock = FakeClock("2026-03-02T09:00:00Z")
    with Gateway(rules=RULES, providers=[slack, payments], clock=clock, background=False,
                 approval_keys=KEYS, config={"external_url": "https://ops.example.com"}) as gw:
        stream = gw.events(namespace="shop")

        print("small refund, no approval needed:")
        print("  ->", gw.dispatch(refund("ada", 40)).kind)

        print("three large refunds:")
        parked = []
        for customer in ("grace", "linus", "barbara"):
            outcome = gw.dispatch(refund(customer, 2500))
            assert isinstance(outcome, PendingApproval)
            parked.append(outcome)
            clock.advance(60)
        print("  approve link:", parked[0].approve_url[:80], "...")

        print("approve grace's refund:")
        outcome = gw.approve("shop", "acme", parked[0].approval_id, **link(parked[0].approve_url))
        print("  ->", outcome.kind)

        print("reject linus's refund:")
        print("  ->", gw.reject("shop", "acme", parked[1].approval_id, **link(parked[1].reject_url)).status)

        print("an hour later, barbara's request expires:")
        clock.advance(timedelta(hours=1))
        print("  tick:", dict(gw.tick()))

        print("approvals now:")
        for approval in gw.list_approvals("shop", "acme"):
            print(f"  {approval.action.payload['customer']:8} {approval.status}")

        print("event stream:")
        while (event := stream.get(timeout=0)) is not None:
            data = event.to_dict()
            detail = data.get("decision") or data.get("outcome") or ""
            if isinstance(detail, dict):
                detail = next(iter(detail))
            print(f"  {event.type:20} {detail}")
        stream.close()


if __name__ == "__main__":
    main()
