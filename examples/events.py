"""Subscriptions and the background processor.

A subscriber filtered to one tenant's failures sees only those; a second one
follows a single action from dispatch to execution. A scheduled action comes
due when the (fake) clock moves and ``tick()`` runs the background jobs --
the same call the ``async with`` background loop makes every second.

Run: ``python examples/events.py``
"""

from __future__ import annotations

import anyio

from acteon import Action, AsyncGateway
from acteon.providers import provider
from acteon.testing import FailingProvider, FakeClock

RULES = """
rules:
  - name: later
    condition: {field: action.action_type, eq: reminder}
    action: {type: schedule, delay_seconds: 120}
"""


@provider("email", inline=True)
def email(action: Action) -> dict[str, str]:
    return {"sent": action.action_type}


async def main() -> None:
    clock = FakeClock("2026-01-15T12:00:00Z")
    broken = FailingProvider("sms", failures=None)  # always down
    async with AsyncGateway(rules=RULES, providers=[email, broken], clock=clock, background=False,
                            config={"executor": {"max_retries": 0}}) as gw:
        failures = gw.events(tenant="acme", outcome="failed")
        reminder = Action(namespace="shop", tenant="acme", provider="email", action_type="reminder")
        one_action = gw.events(action_id=reminder.id)

        await gw.dispatch(Action(namespace="shop", tenant="acme", provider="email", action_type="receipt"))
        await gw.dispatch(Action(namespace="shop", tenant="acme", provider="sms", action_type="otp"))
        await gw.dispatch(Action(namespace="shop", tenant="other", provider="sms", action_type="otp"))
        scheduled = await gw.dispatch(reminder)
        print(f"reminder: {scheduled.kind}")

        while (event := failures.get_nowait()) is not None:
            print(f"failure seen by the acme subscriber: {event.action_type} -> {event.data['outcome']}")

        clock.advance(121)
        summary = await gw.tick()
        print(f"tick ran the due jobs: scheduled_actions={summary['scheduled_actions']}")

        while (event := one_action.get_nowait()) is not None:
            print(f"reminder event: {event.type} {event.data.get('outcome', '')}")
        await failures.aclose()
        await one_action.aclose()


if __name__ == "__main__":
    anyio.run(main)
